"""Test support: a real nats-server per test, and the whole system as `rdev up` starts it."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from rdev_common.broker import EmbeddedNats, free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def wait_for(predicate: Any, timeout: float, message: str, interval: float = 0.05) -> Any:
    """Poll `predicate` until it returns something truthy; fail with `message` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s: {message}")


async def wait_for_async(
    predicate: Callable[[], Any],
    timeout: float,
    message: str | Callable[[], Awaitable[str]],
    interval: float = 0.05,
) -> Any:
    """Await `predicate()` (a plain or an async callable) until it gives something truthy;
    fail with `message` otherwise (or what it returns, asked at the timeout, so that it
    shows the state then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        await asyncio.sleep(interval)
    explained = message if isinstance(message, str) else await message()
    raise AssertionError(f"timed out after {timeout}s: {explained}")


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _die_with_test_process() -> None:
    """`rdev up` gets SIGTERM when the test process dies, so no system outlives its run."""
    import ctypes

    ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class RdevSystem:
    """The whole system started with `rdev up` in a private data dir."""

    data_dir: Path
    port: int
    api_key: str
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.data_dir / "rdev-up.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key}

    def start(self, timeout: float = 180.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        started_at = log.tell()
        self.process = subprocess.Popen(
            [str(BIN / "rdev"), "up"],
            env=self.env,
            cwd=self.data_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_test_process,
        )

        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"rdev up exited: {self.log_tail()}")
            # `rdev up` says so once the api and every service answer their /readyz.
            return b"rdev: up at" in self.log_path.read_bytes()[started_at:]

        wait_for(ready, timeout, "rdev up did not become ready")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def broker_login(self, user: str = "observer") -> dict[str, str]:
        """`connect` keywords for one of the embedded broker's identities (see
        rdev_common.nats_auth): `observer` reads, a service's user does what it does."""
        passwords = json.loads((self.data_dir / "nats-credentials.json").read_text())
        return {"user": user, "password": passwords[user]}

    def nats_url(self) -> str:
        found = re.search(r"JetStream at (nats://\S+)", self.log_path.read_text(errors="replace"))
        assert found, "rdev up did not print its nats-server URL"
        return found.group(1)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers=self.headers, timeout=30)

    def create_project(self, project_id: str, workdir: Path | None = None) -> Path:
        workdir = workdir or self.data_dir / "workspaces" / project_id
        workdir.mkdir(parents=True, exist_ok=True)
        with self.client() as c:
            r = c.post("/projects", json={"id": project_id, "workdir": str(workdir)})
            assert r.status_code in (201, 409), r.text
        return workdir


def system_env(data_dir: Path, port: int, api_key: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RDEV_")}
    env.update(
        {
            "RDEV_DATA_DIR": str(data_dir),
            "RDEV_PORT": str(port),
            "RDEV_BOOTSTRAP_KEY": api_key,
            "RDEV_EXECUTOR_CONCURRENCY": "4",
            "RDEV_KILL_GRACE_S": "2",
            "RDEV_HEARTBEAT_S": "2",
            "RDEV_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true",
            # One admin key from one address drives a whole session: limits out of the way
            # (tests/identity sets its own to test them).
            "RDEV_RATE_LIMIT_REQUESTS": "1000000",
            "RDEV_RATE_LIMIT_SUBMIT": "1000000",
            "RDEV_RATE_LIMIT_AUTH_FAILURES": "1000000",
            "PATH": f"{BIN}:{env.get('PATH', '')}",
        }
    )
    env.update(extra)
    return env


def start_system(data_dir: Path, **extra: str) -> Iterator[RdevSystem]:
    port = free_port()
    key = "rdev_test_" + os.urandom(12).hex()
    system = RdevSystem(data_dir, port, key, system_env(data_dir, port, key, **extra))
    try:
        system.start()
        yield system
    finally:
        system.stop()


__all__ = ["EmbeddedNats", "RdevSystem", "start_system", "wait_for"]


def service_pids(system: RdevSystem, service: str) -> list[int]:
    """Pids of the `python -m rdev_<service>` processes that this system's `rdev up`
    started: its children only, never a run the service is forking at that moment (which,
    until it execs, has the same command line and environment)."""
    pids = []
    marker = str(system.data_dir).encode()
    supervisor = system.process.pid if system.process is not None else None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes()
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if supervisor is not None and parent != supervisor:
            continue
        if f"rdev_{service}".encode() in cmdline and marker in environ:
            pids.append(int(entry.name))
    return pids
