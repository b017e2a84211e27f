"""Client commands that talk to a running rdev over HTTP: `rdev run`, `rdev logs`."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from httpx_sse import connect_sse

RDEV_FAILURE_EXIT = 255


def _base_url() -> str:
    return os.environ.get("RDEV_URL", "http://127.0.0.1:8080").rstrip("/")


def _api_key() -> str:
    key = os.environ.get("RDEV_API_KEY")
    if key:
        return key
    local = Path(os.environ.get("RDEV_DATA_DIR", ".rdev")) / "admin.key"
    if local.exists():
        return local.read_text().strip()
    typer.echo("rdev: set RDEV_API_KEY (or run next to a `rdev up` data dir)", err=True)
    raise typer.Exit(RDEV_FAILURE_EXIT)


def _client() -> httpx.Client:
    return httpx.Client(
        base_url=_base_url(),
        headers={"X-API-Key": _api_key()},
        timeout=httpx.Timeout(30.0, read=None),
    )


def _fail(response: httpx.Response) -> None:
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError):
        message = response.text
    typer.echo(f"rdev: {response.status_code} {message}", err=True)
    raise typer.Exit(RDEV_FAILURE_EXIT)


def follow(client: httpx.Client, project: str, command_id: str) -> int:
    """Write a run's output to stdout/stderr until it completes; returns its exit code."""
    last_id: str | None = None
    while True:
        headers = {"Last-Event-ID": last_id} if last_id else {}
        try:
            with connect_sse(
                client,
                "GET",
                f"/projects/{project}/events",
                params={"stream_id": command_id},
                headers=headers,
            ) as source:
                if source.response.status_code != 200:
                    _fail(source.response)
                for sse in source.iter_sse():
                    if sse.id:
                        last_id = sse.id
                    data: dict[str, Any] = json.loads(sse.data) if sse.data else {}
                    if sse.event == "output":
                        out = sys.stdout if data["stream"] == "stdout" else sys.stderr
                        out.write(data["line"] + ("" if data.get("partial") else "\n"))
                        out.flush()
                    elif sse.event == "error":
                        typer.echo(f"rdev: {data.get('message')}", err=True)
                    elif sse.event == "complete":
                        return int(data["exit_code"])
        except httpx.TransportError:
            time.sleep(0.5)  # the server went away: resume from the last event seen


def run(
    command: Annotated[list[str], typer.Argument(help="the command, after --")],
    project: Annotated[str, typer.Option("--project", "-p")],
    priority: Annotated[str, typer.Option()] = "normal",
    timeout: Annotated[float | None, typer.Option(help="seconds")] = None,
) -> None:
    """Run a command in a project, like `ssh host cmd`: output here, remote exit code."""
    with _client() as client:
        body: dict[str, Any] = {"command": " ".join(command), "priority": priority}
        if timeout is not None:
            body["timeout_s"] = timeout
        response = client.post(f"/projects/{project}/shell", json=body)
        if response.status_code != 202:
            _fail(response)
        command_id = response.json()["data"]["id"]

        def cancel(_signum: int, _frame: object) -> None:
            client.post(f"/commands/{command_id}/cancel")

        signal.signal(signal.SIGINT, cancel)
        raise typer.Exit(follow(client, project, command_id))


def logs(command_id: str) -> None:
    """Print a run's output (waiting for it to finish if it is still running)."""
    with _client() as client:
        response = client.get(f"/commands/{command_id}")
        if response.status_code != 200:
            _fail(response)
        follow(client, response.json()["data"]["project"], command_id)
