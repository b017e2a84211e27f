"""`rdev projects list|create|show|delete`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from rdev_cli import output
from rdev_cli.client import RdevClient
from rdev_cli.errors import CliError, handled

app = typer.Typer(help="Projects: where commands run.", no_args_is_help=True)

COLUMNS: list[output.Column] = [
    ("ID", output.field("id")),
    ("WORKDIR", output.field("workdir")),
    ("MAX CONCURRENCY", output.field("max_concurrency")),
    ("CREATED", output.field("created_at")),
]


def parse_env(pairs: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise CliError(f"--env wants NAME=VALUE, got {pair!r}")
        env[name] = value
    return env


@app.command("list")
@handled
def list_projects(as_json: Annotated[bool, output.JsonOption] = False) -> None:
    """Projects this key may see."""
    with RdevClient() as client:
        output.table(client.data("GET", "/projects"), COLUMNS, as_json)


@app.command()
@handled
def create(
    project_id: Annotated[str, typer.Argument(metavar="ID", help="a-z, 0-9 and '-'")],
    workdir: Annotated[str, typer.Option(help="absolute path of the workspace on the server")],
    env: Annotated[list[str] | None, typer.Option(help="NAME=VALUE, repeatable")] = None,
    max_concurrency: Annotated[int | None, typer.Option(min=1)] = None,
    default_timeout: Annotated[float | None, typer.Option(help="seconds")] = None,
    as_json: Annotated[bool, output.JsonOption] = False,
) -> None:
    """Register a project."""
    body: dict[str, Any] = {"id": project_id, "workdir": workdir, "env": parse_env(env or [])}
    if max_concurrency is not None:
        body["max_concurrency"] = max_concurrency
    if default_timeout is not None:
        body["default_timeout_s"] = default_timeout
    with RdevClient() as client:
        output.record(client.data("POST", "/projects", json_body=body), as_json)


@app.command()
@handled
def show(
    project_id: Annotated[str, typer.Argument(metavar="ID")],
    as_json: Annotated[bool, output.JsonOption] = False,
) -> None:
    """One project's settings."""
    with RdevClient() as client:
        path = f"/projects/{project_id}"
        output.record(client.data("GET", path, what=f"project {project_id!r}"), as_json)


@app.command()
@handled
def delete(
    project_id: Annotated[str, typer.Argument(metavar="ID")],
    force: Annotated[bool, typer.Option(help="even while commands run")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
) -> None:
    """Delete a project (refused while commands run, unless --force)."""
    if not yes:
        typer.confirm(f"delete project {project_id}?", abort=True)
    with RdevClient() as client:
        params = {"force": "true"} if force else None
        client.request(
            "DELETE", f"/projects/{project_id}", params=params, what=f"project {project_id!r}"
        )
    typer.echo(f"deleted project {project_id}")
