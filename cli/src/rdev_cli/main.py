"""The `rdev` command line."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer

from rdev_cli import keys_cmd, projects_cmd, runs, session_cmd, status_cmd, webhooks_cmd

# The operator commands talk to NATS and the database directly; their imports cost
# seconds of CPU, so they are loaded only when asked for (or for help/completion),
# and `rdev run` starts as fast as ssh.
OPERATOR_GROUPS = ("audit", "events")


class _Described(typer.core.TyperGroup):
    """The command tree, its flags and values described in words before it runs."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        _describe_values(self)
        return super().make_context(*args, **kwargs)


app = typer.Typer(
    cls=_Described,
    help="rdev: run commands in project workspaces, stream their output.",
    no_args_is_help=True,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"rdev {version('rdev-cli')}")
        raise typer.Exit()


@app.callback()
def _options(
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="print rdev's version and exit"
        ),
    ] = False,
) -> None:
    """rdev: run commands in project workspaces, stream their output."""


@app.command()
def up(
    host: Annotated[str, typer.Option(envvar="RDEV_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="RDEV_PORT")] = 8080,
) -> None:
    """Run the whole system in the foreground on embedded defaults."""
    from rdev_cli.supervisor import up as run_up

    raise typer.Exit(run_up(host, port))


@app.command()
def migrate() -> None:
    """Apply database migrations to RDEV_DATABASE_URL (or the embedded SQLite file)."""
    from rdev_common.db.migrate import main as run_migrations

    run_migrations()
    typer.echo("migrations applied")


@app.command(name="secrets-key")
def secrets_key() -> None:
    """Print a new key for RDEV_SECRETS_KEY (it seals project secrets in the broker)."""
    from rdev_common.sealing import generate_key

    typer.echo(generate_key())


@app.command(name="nats-passwords")
def nats_passwords() -> None:
    """Print new broker passwords, one RDEV_NATS_<USER>_PASSWORD=… line per identity (for
    compose's .env, or the Secret `rdev-nats` of deploy/)."""
    from rdev_common.nats_auth import generate_passwords, password_variable

    for user, password in generate_passwords().items():
        typer.echo(f"{password_variable(user)}={password}")


app.command(name="login")(session_cmd.login)
app.command(name="logout")(session_cmd.logout)
app.add_typer(projects_cmd.app, name="projects")
app.add_typer(keys_cmd.app, name="keys")
app.add_typer(webhooks_cmd.app, name="webhooks")
app.command(
    name="run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)(runs.run)
for _command in (
    runs.shell,
    runs.rerun,
    runs.attach,
    runs.ps,
    runs.cancel,
    runs.history,
    runs.logs,
):
    app.command()(_command)
app.command(name="status")(status_cmd.status)


def _add_operator_groups() -> None:
    import structlog

    from rdev_cli import audit_cmds, events_cmds

    # Their results go to stdout (`--json` is parsed); the broker client's warnings, such
    # as a server of RDEV_NATS_URL's list being down, go to stderr.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))

    app.add_typer(audit_cmds.app, name="audit")
    app.add_typer(events_cmds.app, name="events")


def main() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    first = sys.argv[1] if len(sys.argv) > 1 else "--help"
    if first in OPERATOR_GROUPS or first.startswith("-") or "_RDEV_COMPLETE" in os.environ:
        _add_operator_groups()
    app()


def _describe_values(command: Any) -> None:
    """Help in words: a flag shows no type, a value its name (`--timeout SECONDS`,
    `--limit LIMIT`), never a Python type like `<bool>` or `<list[str]>`."""
    for param in command.params:
        _describe(param)
    get_help_option = command.get_help_option

    def help_option(ctx: Any) -> Any:
        option = get_help_option(ctx)
        if option is not None:
            _describe(option)
        return option

    command.get_help_option = help_option
    for sub in (getattr(command, "commands", None) or {}).values():
        _describe_values(sub)


def _describe(param: Any) -> None:
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        param.metavar = ""
    elif param.metavar is None and param.name:
        param.metavar = param.name.upper() + ("..." if param.nargs != 1 else "")
    if param.param_type_name == "argument":
        # An argument's type column ignores its metavar: its name says it all.
        param.display_type_rich = lambda ctx: None
