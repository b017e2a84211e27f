"""docker-compose.yml run for real: every image built from the one Dockerfile, the stack up
on a free loopback port, a project on the workspaces volume, the README's curl flow and
an SSE client, the executor and the broker restarted mid-run, then everything removed
(containers, network, volumes; the images stay as the next run's build cache).

Needs a Docker engine (see docker_engine.py: used, or started as root, else skipped)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from rdev_common.broker import free_port
from tests.e2e.sse_helpers import events_url, read_events, submit
from tests.support import wait_for

from .docker_engine import (
    BUILD_ENV,
    Unavailable,
    compose_command,
    docker,
    engine,
    ensure_base_images,
    nats_passwords,
)
from .support import REPO

pytestmark = [pytest.mark.compose, pytest.mark.timeout(1200)]

SERVICES = ("nats", "postgres", "api", "executor", "webhooks", "audit")
PROJECT = "my-project"
WORKDIR = f"/workspaces/{PROJECT}"


@dataclass
class Stack:
    command: list[str]
    log_dir: Path
    name: str = field(default_factory=lambda: "rdevtest" + uuid.uuid4().hex[:8])
    port: int = field(default_factory=free_port)
    key: str = ""
    passwords: dict[str, str] = field(default_factory=nats_passwords)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> str:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("RDEV_")},
            **BUILD_ENV,
            **self.passwords,
            "RDEV_API_PORT": str(self.port),
        }
        result = subprocess.run(
            [*self.command, "-p", self.name, "-f", str(REPO / "docker-compose.yml"), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO,
            env=env,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"compose {' '.join(args)}:\n{result.stdout}{result.stderr}")
        return result.stdout + result.stderr

    def states(self) -> dict[str, str]:
        """service → container status text, e.g. `Up 3 seconds (healthy)`."""
        out = docker(
            "ps",
            "-a",
            "--filter",
            f"label=com.docker.compose.project={self.name}",
            "--format",
            '{{.Label "com.docker.compose.service"}}\t{{.Status}}',
        )
        return dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)

    def healthy(self) -> bool:
        states = self.states()
        return all("(healthy)" in states.get(s, "") for s in SERVICES) and states.get(
            "migrate", ""
        ).startswith("Exited (0)")

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers={"X-API-Key": self.key}, timeout=60)

    def save_logs(self) -> None:
        (self.log_dir / "compose.log").write_text(self.compose("logs", "--no-color", check=False))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    log_dir = tmp_path_factory.mktemp("compose")
    try:
        with engine(log_dir):
            ensure_base_images()
            stack = Stack(command, log_dir)
            try:
                stack.compose("build", timeout=1200)
                stack.compose("up", "-d", timeout=600)
                wait_for(stack.healthy, 240, f"stack not healthy: {stack.states()}", interval=1)
                stack.key = admin_key(stack.compose("logs", "--no-color", "api"))
                yield stack
            finally:
                stack.save_logs()
                stack.compose("down", "-v", "--remove-orphans", "-t", "30", check=False)
    except Unavailable as exc:
        pytest.skip(f"compose stack not run: {exc}")


def admin_key(api_logs: str) -> str:
    """The key the api generated on its first start and printed once."""
    shown = re.findall(
        r"rdev admin API key[^\n]*\n(?:[^\n]*\n)*?[^\n]*?(rdev_[A-Za-z0-9_-]+)", api_logs
    )
    assert len(shown) == 1, f"the api printed {len(shown)} admin keys:\n{api_logs[-3000:]}"
    return shown[0]


def curl(stack: Stack, *args: str) -> str:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    result = subprocess.run(
        [curl, "-sS", "--max-time", "120", *args],
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def sse_events(text: str) -> list[dict[str, Any]]:
    """`event`/`data` pairs of an SSE body curl printed."""
    events = []
    for block in text.split("\n\n"):
        fields = dict(ln.split(": ", 1) for ln in block.splitlines() if ": " in ln)
        if "event" in fields:
            events.append({"event": fields["event"], "data": json.loads(fields.get("data", "{}"))})
    return events


def test_the_api_is_published_on_loopback_only(stack: Stack) -> None:
    ports = docker(
        "ps",
        "--filter",
        f"label=com.docker.compose.project={stack.name}",
        "--filter",
        "label=com.docker.compose.service=api",
        "--format",
        "{{.Ports}}",
    )
    assert f"127.0.0.1:{stack.port}->8080/tcp" in ports, ports
    assert "0.0.0.0" not in ports, ports
    with httpx.Client(base_url=stack.base_url) as anonymous:
        assert anonymous.get("/projects").status_code == 401


def test_a_project_on_the_workspaces_volume_runs_the_readme_flow(stack: Stack) -> None:
    stack.compose("exec", "-T", "executor", "mkdir", "-p", WORKDIR)
    key, url = f"X-API-Key: {stack.key}", stack.base_url
    json_type = "Content-Type: application/json"
    created = curl(
        stack,
        "-X",
        "POST",
        f"{url}/projects",
        "-H",
        key,
        "-H",
        json_type,
        "-d",
        json.dumps({"id": PROJECT, "workdir": WORKDIR}),
    )
    assert json.loads(created)["data"]["workdir"] == WORKDIR, created
    submitted = curl(
        stack,
        "-X",
        "POST",
        f"{url}/projects/{PROJECT}/shell",
        "-H",
        key,
        "-H",
        json_type,
        "-d",
        json.dumps({"command": "pwd; ls; exit 3"}),
    )
    command_id = json.loads(submitted)["data"]["id"]
    events = sse_events(
        curl(stack, "-N", f"{url}/projects/{PROJECT}/events?stream_id={command_id}", "-H", key)
    )
    lines = [e["data"]["line"] for e in events if e["event"] == "output"]
    assert lines == [WORKDIR], events
    assert events[-1]["event"] == "complete", events
    assert events[-1]["data"]["exit_code"] == 3, events
    # Submit and stream in one request.
    events = sse_events(
        curl(
            stack,
            "-N",
            "-X",
            "POST",
            f"{url}/projects/{PROJECT}/shell",
            "-H",
            key,
            "-H",
            "Accept: text/event-stream",
            "-H",
            json_type,
            "-d",
            json.dumps({"command": "echo one; echo two >&2"}),
        )
    )
    outputs = sorted(
        (e["data"]["stream"], e["data"]["line"]) for e in events if e["event"] == "output"
    )
    assert outputs == [("stderr", "two"), ("stdout", "one")], events
    assert events[-1]["event"] == "complete" and events[-1]["data"]["exit_code"] == 0


def test_an_sse_client_reads_a_run_live(stack: Stack) -> None:
    with stack.client() as client:
        command_id = submit(client, PROJECT, "for i in $(seq 1 20); do echo l$i; sleep 0.05; done")
        status, events = read_events(client, events_url(PROJECT, command_id), timeout=120)
    assert status == 200
    assert [e.data["line"] for e in events if e.event == "output"] == [
        f"l{i}" for i in range(1, 21)
    ]
    assert events[-1].event == "complete" and events[-1].data["exit_code"] == 0


def counted_run(client: httpx.Client, lines: int, prefix: str) -> str:
    return submit(
        client, PROJECT, f"for i in $(seq 1 {lines}); do echo {prefix}-$i; sleep 0.1; done"
    )


def output_lines(client: httpx.Client, command_id: str) -> list[str]:
    r = client.get(f"/commands/{command_id}/output")
    assert r.status_code == 200, r.text
    return r.text.splitlines()


def finished(client: httpx.Client, command_id: str) -> dict[str, Any] | None:
    r = client.get(f"/commands/{command_id}")
    if r.status_code != 200:
        return None
    data: dict[str, Any] = r.json()["data"]
    return data if data.get("reason") is not None else None


def test_executor_restarted_mid_run(stack: Stack) -> None:
    """`docker compose restart executor` (SIGTERM): the executor gives its run
    RDEV_KILL_GRACE_S to finish, within the container's stop_grace_period, so the run
    completes; had it been killed outright, the run would end `lost` (docs/architecture.md)."""
    with stack.client() as client:
        command_id = counted_run(client, 50, "e")
        wait_for(lambda: len(output_lines(client, command_id)) >= 5, 120, "run did not start")
        stack.compose("restart", "executor", timeout=120)
        done = wait_for(lambda: finished(client, command_id), 180, "run did not end")
        lines = output_lines(client, command_id)
        wanted = [f"e-{i}" for i in range(1, 51)]
        if done["reason"] == "lost":
            assert lines == wanted[: len(lines)], "a lost run keeps what it printed, once"
        else:
            assert (done["reason"], done["exit_code"]) == ("exited", 0), done
            assert lines == wanted
        wait_for(stack.healthy, 180, f"executor not back: {stack.states()}", interval=1)
        after = submit(client, PROJECT, "echo after")
        done = wait_for(lambda: finished(client, after), 120, "no run after the restart")
        assert done["exit_code"] == 0 and output_lines(client, after) == ["after"]


def test_broker_restarted_mid_run_loses_no_line(stack: Stack) -> None:
    with stack.client() as client:
        command_id = counted_run(client, 80, "n")
        wait_for(lambda: len(output_lines(client, command_id)) >= 5, 120, "run did not start")
        stack.compose("restart", "nats", timeout=120)
        done = wait_for(lambda: finished(client, command_id), 240, "run did not end", interval=1)
        assert (done["reason"], done["exit_code"]) == ("exited", 0), done
        wanted = [f"n-{i}" for i in range(1, 81)]
        assert output_lines(client, command_id) == wanted
        status, events = read_events(client, events_url(PROJECT, command_id), timeout=120)
    assert status == 200
    assert [e.data["line"] for e in events if e.event == "output"] == wanted
    wait_for(stack.healthy, 180, f"stack not healthy again: {stack.states()}", interval=1)


def test_images_hold_only_their_service(stack: Stack) -> None:
    for svc in ("api", "executor", "webhooks", "audit"):
        image = f"ghcr.io/rdev/rdev-{svc}:dev"
        env = docker("image", "inspect", image, "--format", "{{json .Config.Env}}")
        assert f"RDEV_SERVICE={svc}" in env, env
        others = [o for o in ("api", "executor", "webhooks", "audit") if o != svc]
        probe = "; ".join(
            f"import importlib.util as u; print(u.find_spec('rdev_{o}'))" for o in others
        )
        found = docker("run", "--rm", image, "python", "-c", probe, timeout=120)
        assert found.split() == ["None"] * 3, found
