"""`rdev webhooks add|list|deliveries|redeliver`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from rdev_cli import output
from rdev_cli.client import RdevClient
from rdev_cli.errors import handled

app = typer.Typer(help="Webhooks of a project and their deliveries.", no_args_is_help=True)

ProjectOption = typer.Option("--project", "-p", envvar="RDEV_PROJECT", help="project id")


def pick(row: dict[str, Any], *names: str) -> Any:
    return next((row[n] for n in names if row.get(n) is not None), None)


HOOK_COLUMNS: list[output.Column] = [
    ("ID", output.field("id")),
    ("URL", output.field("url")),
    ("EVENTS", lambda w: pick(w, "events", "event_types")),
    ("ENABLED", lambda w: pick(w, "enabled", "active")),
    ("DESCRIPTION", output.field("description")),
]
DELIVERY_COLUMNS: list[output.Column] = [
    ("ID", output.field("id")),
    ("EVENT", lambda d: pick(d, "event_type", "type", "event")),
    ("STATUS", lambda d: pick(d, "status", "state")),
    (
        "ATTEMPTS",
        lambda d: (lambda a: len(a) if isinstance(a, list) else a)(
            pick(d, "attempts", "attempt_count")
        ),
    ),
    ("LAST RESPONSE", lambda d: pick(d, "last_status_code", "response_status", "status_code")),
    ("CREATED", lambda d: pick(d, "created_at", "time")),
]


@app.command()
@handled
def add(
    url: Annotated[str, typer.Argument()],
    project: Annotated[str, ProjectOption],
    event: Annotated[
        list[str] | None, typer.Option(help="event type, wildcards allowed (repeatable)")
    ] = None,
    description: Annotated[str | None, typer.Option()] = None,
    as_json: Annotated[bool, output.JsonOption] = False,
) -> None:
    """Register a webhook; its signing secret is printed once."""
    body: dict[str, Any] = {"url": url, "events": event or ["command.*"]}
    if description:
        body["description"] = description
    with RdevClient() as client:
        created = client.data(
            "POST", f"/projects/{project}/webhooks", json_body=body, what=f"project {project!r}"
        )
    if as_json:
        output.emit_json(created)
        return
    typer.echo(f"id      {created.get('id')}")
    typer.echo(f"secret  {pick(created, 'secret', 'signing_secret')}")
    typer.echo("Store the signing secret now: it is not shown again.", err=True)


@app.command("list")
@handled
def list_hooks(
    project: Annotated[str, ProjectOption], as_json: Annotated[bool, output.JsonOption] = False
) -> None:
    """Webhooks of a project."""
    with RdevClient() as client:
        rows = client.pages(f"/projects/{project}/webhooks", None, what=f"project {project!r}")
    output.table(rows, HOOK_COLUMNS, as_json)


@app.command()
@handled
def deliveries(
    webhook_id: Annotated[str, typer.Argument(metavar="WEBHOOK_ID")],
    project: Annotated[str, ProjectOption],
    status: Annotated[str | None, typer.Option(help="only deliveries in this status")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    as_json: Annotated[bool, output.JsonOption] = False,
) -> None:
    """Deliveries of a webhook, newest first: status and attempts."""
    with RdevClient() as client:
        rows = client.pages(
            f"/projects/{project}/webhooks/{webhook_id}/deliveries",
            limit,
            params={"status": status},
            what=f"webhook {webhook_id!r}",
        )
    output.table(rows, DELIVERY_COLUMNS, as_json)


@app.command()
@handled
def redeliver(
    webhook_id: Annotated[str, typer.Argument(metavar="WEBHOOK_ID")],
    delivery_id: Annotated[str, typer.Argument(metavar="DELIVERY_ID")],
    project: Annotated[str, ProjectOption],
) -> None:
    """Send a delivery again."""
    path = f"/projects/{project}/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver"
    with RdevClient() as client:
        client.request("POST", path, what=f"delivery {delivery_id!r}")
    typer.echo(f"redelivery of {delivery_id} scheduled")
