"""rdev's services started one by one (`python -m rdev_<service>`), so a test can run
several replicas of each and SIGKILL any of them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from rdev_common.broker import free_port
from tests.support import wait_for


@dataclass
class Service:
    kind: str  # api | executor | webhooks | audit
    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)  # the api's port, else the health port
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Service:
        port = {"RDEV_PORT" if self.kind == "api" else "RDEV_HEALTH_PORT": str(self.port)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", f"rdev_{self.kind}"],
            env={**self.env, **port},
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def ready(self) -> bool:
        if not self.alive():
            raise AssertionError(f"{self.log_path.name} exited: {self.log_tail()}")
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout: float = 120) -> Service:
        wait_for(self.ready, timeout, f"{self.log_path.name} not ready", interval=0.2)
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL to the service's whole process group: a crash, nothing runs after it."""
        if self.alive():
            assert self.process is not None
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.process is not None:
            # Whatever the service left in its group (a run's processes) goes too.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])
