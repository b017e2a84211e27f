"""`rdev keys create|list|revoke|rotate`: API keys. A secret is printed once, at creation."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from rdev_cli import output
from rdev_cli.client import RdevClient
from rdev_cli.errors import CliError, handled

app = typer.Typer(help="API keys: scopes, projects, allowed IPs, expiry.", no_args_is_help=True)

SCOPES = (
    "admin",
    "projects:write",
    "commands:execute",
    "commands:read",
    "webhooks:write",
    "audit:read",
)
COLUMNS: list[output.Column] = [
    ("ID", output.field("id")),
    ("NAME", output.field("name")),
    ("SCOPES", output.field("scopes")),
    ("PROJECTS", lambda k: k.get("projects") or "all"),
    ("ALLOWED IPS", lambda k: k.get("allowed_ips") or "any"),
    ("EXPIRES", output.field("expires_at")),
    ("LAST USED", output.field("last_used_at")),
    ("REVOKED", output.field("revoked_at")),
]
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def expiry(value: str) -> str:
    """An ISO timestamp as given, or a duration from now such as 30d or 12h."""
    match = re.fullmatch(r"(\d+)([smhdw])", value.strip())
    if match:
        delta = timedelta(**{UNITS[match[2]]: int(match[1])})
        return (datetime.now(UTC) + delta).isoformat()
    try:
        return datetime.fromisoformat(value).isoformat()
    except ValueError as exc:
        raise CliError(
            f"--expires wants an ISO time or a duration like 30d, got {value!r}"
        ) from exc


def secret_of(created: dict[str, Any]) -> str | None:
    return next((created[k] for k in ("secret", "key", "api_key") if created.get(k)), None)


def show_secret(created: dict[str, Any], as_json: bool) -> None:
    if as_json:
        output.emit_json(created)
        return
    typer.echo(f"id      {created.get('id')}")
    typer.echo(f"secret  {secret_of(created)}")
    typer.echo(
        "Store the secret now: rdev keeps only its hash and will not show it again.", err=True
    )


@app.command()
@handled
def create(
    name: Annotated[str, typer.Argument()],
    scope: Annotated[
        list[str] | None, typer.Option(help=f"repeatable: {', '.join(SCOPES)}")
    ] = None,
    project: Annotated[
        list[str] | None, typer.Option(help="limit to these projects (repeatable)")
    ] = None,
    allow_ip: Annotated[list[str] | None, typer.Option(help="IP or CIDR (repeatable)")] = None,
    expires: Annotated[str | None, typer.Option(help="ISO time or duration (30d, 12h)")] = None,
    as_json: Annotated[bool, output.JsonOption] = False,
) -> None:
    """Create a key and print its secret once."""
    body: dict[str, Any] = {"name": name, "scopes": scope or ["commands:execute", "commands:read"]}
    if project:
        body["projects"] = project
    if allow_ip:
        body["allowed_ips"] = allow_ip
    if expires:
        body["expires_at"] = expiry(expires)
    with RdevClient() as client:
        show_secret(client.data("POST", "/api-keys", json_body=body), as_json)


@app.command("list")
@handled
def list_keys(as_json: Annotated[bool, output.JsonOption] = False) -> None:
    """Keys (never their secrets)."""
    with RdevClient() as client:
        output.table(client.pages("/api-keys", None), COLUMNS, as_json)


@app.command()
@handled
def revoke(key_id: Annotated[str, typer.Argument(metavar="KEY_ID")]) -> None:
    """Revoke a key: it stops working at once."""
    with RdevClient() as client:
        client.request("DELETE", f"/api-keys/{key_id}", what=f"key {key_id!r}")
    typer.echo(f"revoked {key_id}")


@app.command()
@handled
def rotate(
    key_id: Annotated[str, typer.Argument(metavar="KEY_ID")],
    grace: Annotated[
        float | None, typer.Option(help="seconds the old secret keeps working")
    ] = None,
    as_json: Annotated[bool, output.JsonOption] = False,
) -> None:
    """Issue a new secret for a key; the old one works for a grace period."""
    body = {"grace_s": grace} if grace is not None else None
    with RdevClient() as client:
        rotated = client.data(
            "POST", f"/api-keys/{key_id}/rotate", json_body=body, what=f"key {key_id!r}"
        )
        show_secret(rotated, as_json)
