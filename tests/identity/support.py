"""Identity tests: api processes started directly (`python -m rdev_api`) against a broker
and a database the test owns, so several replicas can share them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from rdev_common.broker import free_port
from rdev_common.db.migrate import upgrade
from tests.support import wait_for

ADMIN_KEY_PREFIX = "rdev_identity_admin_"


@dataclass
class ApiProcess:
    """One api replica; its stdout and stderr go to `log_path`."""

    data_dir: Path
    nats_url: str
    database_url: str
    admin_key: str
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"api-{self.port}.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RDEV_")}
        env.update(
            {
                "RDEV_DATA_DIR": str(self.data_dir),
                "RDEV_NATS_URL": self.nats_url,
                "RDEV_DATABASE_URL": self.database_url,
                "RDEV_PORT": str(self.port),
                "RDEV_BOOTSTRAP_KEY": self.admin_key,
                "RDEV_LOG_LEVEL": "debug",
                "PYTHONUNBUFFERED": "1",
                **self.extra_env,
            }
        )
        return env

    def start(self, timeout: float = 60) -> ApiProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rdev_api"],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"api exited: {self.log_path.read_text()[-3000:]}")
            try:
                return httpx.get(f"{self.base_url}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout, f"api on port {self.port} did not become ready")
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs (a crash)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def client(self, key: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"X-API-Key": key or self.admin_key, **kwargs.pop("headers", {})}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30, **kwargs)


def prepare_database(url: str) -> str:
    upgrade(url)
    return url


def create_key(api: ApiProcess, **body: Any) -> dict[str, Any]:
    body.setdefault("name", "test key")
    with api.client() as c:
        r = c.post("/api-keys", json=body)
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


def create_project(api: ApiProcess, project_id: str, workdir: Path, **body: Any) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    with api.client() as c:
        r = c.post("/projects", json={"id": project_id, "workdir": str(workdir), **body})
    assert r.status_code == 201, r.text


class StreamWatcher:
    """Reads one SSE stream in a thread, keeping its events, until the server ends it."""

    def __init__(self, base_url: str, path: str, headers: dict[str, str]) -> None:
        import threading

        self.events: list[tuple[str, dict[str, Any]]] = []
        self.status: int | None = None
        self.opened = threading.Event()
        self.ended = threading.Event()
        self._thread = threading.Thread(
            target=self._read, args=(base_url, path, headers), daemon=True
        )
        self._thread.start()

    def _read(self, base_url: str, path: str, headers: dict[str, str]) -> None:
        import json

        try:
            with (
                httpx.Client(base_url=base_url, timeout=httpx.Timeout(5, read=120)) as client,
                client.stream("GET", path, headers=headers) as response,
            ):
                self.status = response.status_code
                self.opened.set()
                name = ""
                for line in response.iter_lines():
                    if line.startswith("event:"):
                        name = line.split(":", 1)[1].strip()
                    elif line.startswith("data:"):
                        self.events.append((name, json.loads(line.split(":", 1)[1])))
        except httpx.HTTPError:
            pass
        finally:
            self.opened.set()
            self.ended.set()

    def names(self) -> list[str]:
        return [name for name, _ in self.events]
