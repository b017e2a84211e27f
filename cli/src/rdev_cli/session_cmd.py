"""`rdev login` / `rdev logout`: remember which rdev to talk to, and with which key."""

from __future__ import annotations

from typing import Annotated

import typer

from rdev_cli import config
from rdev_cli.client import RdevClient
from rdev_cli.errors import handled


@handled
def login(
    url: Annotated[
        str | None, typer.Option(help="base URL of the rdev API", envvar="RDEV_URL")
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            help="the key (prompted for, hidden, when not given)",
            envvar="RDEV_API_KEY",
        ),
    ] = None,
    verify: Annotated[bool, typer.Option(help="check the key against the server first")] = True,
) -> None:
    """Store the base URL and an API key in ~/.config/rdev/config.toml (mode 0600)."""
    base = (url or typer.prompt("rdev URL", default=config.load().url)).rstrip("/")
    key = api_key or typer.prompt("API key", hide_input=True)
    if verify:
        with RdevClient(config.Config(base, key, "login")) as client:
            client.data("GET", "/projects")
    path = config.save(base, key)
    typer.echo(f"logged in to {base}; saved to {path}")


def logout() -> None:
    """Forget the stored URL and key."""
    removed = config.forget()
    typer.echo("logged out" if removed else "no stored login")
