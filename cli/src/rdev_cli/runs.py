"""Commands about runs: `rdev run|rerun|attach|ps|cancel|history|logs`."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Annotated, Any

import typer

from rdev_cli import complete, output, stdin_forward, terminal
from rdev_cli.client import RdevClient
from rdev_cli.errors import (
    EXIT_INTERRUPTED,
    EXIT_REMOTE_FAILURE,
    CliError,
    handled,
    report,
)

ProjectOption = typer.Option(
    "--project",
    "-p",
    envvar="RDEV_PROJECT",
    help="project id",
    metavar="PROJECT",
    autocompletion=complete.projects,
)
CommandIdArgument = typer.Argument(metavar="COMMAND_ID", autocompletion=complete.command_ids)
RUN_COLUMNS: list[output.Column] = [
    ("ID", output.field("id")),
    ("PROJECT", output.field("project")),
    ("STATE", output.status),
    ("EXIT", output.field("exit_code")),
    ("DURATION", lambda c: output.duration(c.get("duration_ms"))),
    ("PRIORITY", output.field("priority")),
    ("COMMAND", output.field("command")),
    ("REQUESTED", output.when("requested_at")),
]
STATE_HELP = "queued, running, succeeded, failed, timed out, cancelled or lost"


def write_line(event: str, data: dict[str, Any]) -> None:
    """One output line to our stdout or stderr, ended as the command ended it."""
    if event == "output":
        out = sys.stdout if data.get("stream") == "stdout" else sys.stderr
        end = "" if data.get("partial") else "\r" if data.get("cr") else "\n"
        out.write(data["line"] + end)
        out.flush()
    elif event == "error":
        report(CliError(f"the run failed: {data.get('message')} ({data.get('code')})"))
    elif event == "queued" and "position" in data and sys.stderr.isatty():
        report(CliError(queued_note(data)), style="yellow")
    elif event == "progress" and "message" in data and sys.stderr.isatty():
        report(CliError(f"starting — {data['message']}"), style="yellow")


def queued_note(data: dict[str, Any]) -> str:
    """`queued — position 2, waiting for an executor (about 40 s)`."""
    estimate = data.get("estimate_s")
    about = f" (about {output.duration(int(estimate * 1000))})" if estimate else ""
    return f"queued — position {data['position']}, {data.get('waiting_for', 'waiting')}{about}"


def last_line(done: dict[str, Any]) -> None:
    """On a terminal, how the run ended, in the words and colour of `rdev history`."""
    if not sys.stderr.isatty():
        return
    state = output.status(done)
    took = output.duration(done.get("duration_ms"))
    report(CliError(f"{state} after {took}"), style=state.style or "default")


def stream_run(client: RdevClient, project: str, command_id: str) -> int:
    """Print a run's output until it completes; its exit code (255 if rdev failed)."""
    done = client.follow(project, command_id, write_line)
    return int(done.get("exit_code", EXIT_REMOTE_FAILURE))


class CancelOnInterrupt:
    """First Ctrl-C cancels the remote run and keeps streaming until it ends; a second detaches."""

    def __init__(self, command_id: str) -> None:
        self.command_id = command_id
        self.asked = False

    def __call__(self, _signum: int, _frame: object) -> None:
        if self.asked:
            raise KeyboardInterrupt
        self.asked = True
        report(CliError(f"cancelling {self.command_id} (Ctrl-C again to stop waiting)"))
        # Not from inside the handler: the main thread may be mid-request on its client.
        threading.Thread(target=self.cancel, daemon=True).start()

    def cancel(self) -> None:
        try:
            with RdevClient() as client:
                client.request("POST", f"/commands/{self.command_id}/cancel")
        except CliError as error:
            report(error)


def run(
    command: Annotated[list[str], typer.Argument(help="the command, after --", metavar="COMMAND")],
    project: Annotated[str, ProjectOption],
    priority: Annotated[
        str, typer.Option(help="high, normal or low", metavar="PRIORITY")
    ] = "normal",
    timeout: Annotated[
        float | None, typer.Option(help="stop it after this many seconds", metavar="SECONDS")
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option(
            "--env", "-e", help="set a variable, NAME=VALUE (repeat for more)", metavar="NAME=VALUE"
        ),
    ] = None,
    cwd: Annotated[
        str | None,
        typer.Option(help="directory to run in, relative to the project's workdir", metavar="DIR"),
    ] = None,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="print the id and return")] = False,
    no_stdin: Annotated[
        bool, typer.Option("--no-stdin", "-n", help="do not forward a piped stdin")
    ] = False,
    tty_mode: Annotated[
        bool, typer.Option("--tty", "-t", help="a terminal, like ssh -t (~. detaches)")
    ] = False,
    as_json: Annotated[bool, output.JsonOption] = False,
) -> None:
    """Run a command in a project, like `ssh host cmd`: output here, remote exit code.

    A piped or redirected stdin is forwarded to the command (its end closes the
    command's stdin); a terminal's is not (`-n`: never).
    Exits 255 when rdev itself fails (bad key, unknown project, server unreachable).
    """
    from rdev_cli.projects_cmd import parse_env

    forward = not tty_mode and not detach and not no_stdin and stdin_forward.carries_data()

    try:
        body: dict[str, Any] = {"command": " ".join(command), "priority": priority}
        if forward:
            body["stdin"] = True
        if tty_mode:
            terminal.require_terminal()
            body["tty"] = terminal.size()
        if timeout is not None:
            body["timeout_s"] = timeout
        if env:
            body["env"] = parse_env(env)
        if cwd:
            body["cwd"] = cwd
    except CliError as error:
        report(error)
        raise typer.Exit(error.exit_code) from None
    try:
        with RdevClient() as client:
            if detach:
                path = f"/projects/{project}/shell"
                created = client.data("POST", path, json_body=body, what=f"project {project!r}")
                if as_json:
                    output.emit_json(created)
                else:
                    typer.echo(created["id"])
                return
            if tty_mode:
                code = int(terminal.session(client, project, body).get("exit_code", 255))
                raise typer.Exit(code)

            def on_submitted(command_id: str) -> None:
                signal.signal(signal.SIGINT, CancelOnInterrupt(command_id))
                if forward:
                    stdin_forward.start(command_id)

            # One request: the submit's answer is the run's event stream.
            done = client.submit_and_follow(project, body, on_submitted, write_line)
            code = int(done.get("exit_code", EXIT_REMOTE_FAILURE))
    except CliError as error:
        report(error)
        raise typer.Exit(EXIT_REMOTE_FAILURE) from None
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None
    last_line(done)
    raise typer.Exit(code)


def rerun(
    command_id: Annotated[str, CommandIdArgument],
    detach: Annotated[bool, typer.Option("--detach", "-d", help="print the id and return")] = False,
) -> None:
    """Run a command again: same command, priority, timeout, env and cwd; follow it."""
    try:
        with RdevClient() as client:
            created = client.data(
                "POST", f"/commands/{command_id}/rerun", what=f"command {command_id!r}"
            )
            if detach:
                typer.echo(created["id"])
                return
            if sys.stderr.isatty():
                report(CliError(f"running again as {created['id']}"), style="default")
            signal.signal(signal.SIGINT, CancelOnInterrupt(created["id"]))
            done = client.follow(created["project"], created["id"], write_line)
            code = int(done.get("exit_code", EXIT_REMOTE_FAILURE))
    except CliError as error:
        report(error)
        raise typer.Exit(EXIT_REMOTE_FAILURE) from None
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None
    last_line(done)
    raise typer.Exit(code)


def attach(command_id: Annotated[str, CommandIdArgument]) -> None:
    """Follow a queued or running command (or replay a finished one); exit with its code.

    Ctrl-C stops following; the run goes on (`rdev cancel` stops it).
    """
    try:
        with RdevClient() as client:
            state = client.data("GET", f"/commands/{command_id}", what=f"command {command_id!r}")
            if state.get("tty") and state["status"] != "completed" and sys.stdin.isatty():
                done = terminal.session(client, state["project"], command_id=command_id)
                raise typer.Exit(int(done.get("exit_code", EXIT_REMOTE_FAILURE)))
            code = stream_run(client, state["project"], command_id)
    except CliError as error:
        report(error)
        raise typer.Exit(EXIT_REMOTE_FAILURE) from None
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None
    raise typer.Exit(code)


@handled
def cancel(
    command_id: Annotated[str, CommandIdArgument],
    as_json: Annotated[bool, output.JsonOption] = False,
) -> None:
    """Cancel a queued or running command."""
    with RdevClient() as client:
        state = client.data(
            "POST", f"/commands/{command_id}/cancel", what=f"command {command_id!r}"
        )
    if as_json:
        output.emit_json(state)
    elif state.get("status") == "completed":
        typer.echo(f"{command_id} {output.status(state)}")
    else:
        typer.echo(f"cancel requested for {command_id}")


def project_ids(client: RdevClient, project: str | None) -> list[str]:
    if project:
        return [project]
    return [p["id"] for p in client.data("GET", "/projects")]


def commands_of(
    client: RdevClient, project: str, status: str | None, limit: int | None
) -> list[dict[str, Any]]:
    """The project's runs, newest first; `status` is a state in words, as shown."""
    path = f"/projects/{project}/commands"
    params = {"status": status, "limit": min(limit or 500, 500)}
    return client.pages(path, limit, params=params, what=f"project {project!r}")


@handled
def ps(
    project: Annotated[str | None, ProjectOption] = None,
    as_json: Annotated[bool, output.JsonOption] = False,
) -> None:
    """Running and queued commands (of one project, or of every project this key sees)."""
    with RdevClient() as client:
        rows = [
            row
            for pid in project_ids(client, project)
            for status in ("running", "queued")
            for row in commands_of(client, pid, status, None)
        ]
    output.table(rows, RUN_COLUMNS[:3] + RUN_COLUMNS[5:], as_json)


@handled
def history(
    project: Annotated[str | None, ProjectOption] = None,
    status: Annotated[
        str | None, typer.Option(help=f"only runs that are {STATE_HELP}", metavar="STATE")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="newest N runs")] = 20,
    as_json: Annotated[bool, output.JsonOption] = False,
) -> None:
    """Past and current runs, newest first."""
    with RdevClient() as client:
        rows = [
            row
            for pid in project_ids(client, project)
            for row in commands_of(client, pid, status, limit)
        ]
    rows.sort(key=lambda c: str(c.get("requested_at")), reverse=True)
    output.table(rows[:limit], RUN_COLUMNS, as_json)


@handled
def logs(
    command_id: Annotated[str, CommandIdArgument],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="wait for new output")] = False,
    as_json: Annotated[bool, output.JsonOption] = False,
) -> None:
    """Print a run's whole log (text; JSON lines with --json)."""
    params = {"format": "jsonl" if as_json else "text", "follow": "true" if follow else None}
    with (
        RdevClient() as client,
        client.stream(
            f"/commands/{command_id}/output", params, f"command {command_id!r}"
        ) as response,
    ):
        for chunk in response.iter_bytes():
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()


def shell(
    project: Annotated[str, ProjectOption],
    timeout: Annotated[
        float | None, typer.Option(help="stop it after this many seconds", metavar="SECONDS")
    ] = None,
) -> None:
    """A login shell in the project's workspace, in a terminal (`$SHELL -l`, else
    /bin/sh); `~.` detaches, `exit` ends it."""
    body: dict[str, Any] = {"command": 'exec "${SHELL:-/bin/sh}" -l', "priority": "high"}
    if timeout is not None:
        body["timeout_s"] = timeout
    try:
        terminal.require_terminal()
        body["tty"] = terminal.size()
        with RdevClient() as client:
            code = int(terminal.session(client, project, body).get("exit_code", 255))
    except CliError as error:
        report(error)
        raise typer.Exit(EXIT_REMOTE_FAILURE) from None
    raise typer.Exit(code)
