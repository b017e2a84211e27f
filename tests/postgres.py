"""Throw-away PostgreSQL: a database on the suite's server, dropped afterwards, or a
private server of a test's own, to stop and start."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import port_open

POSTGRES_ADMIN_URL = os.environ.get(
    "RDEV_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def postgres_available() -> bool:
    return port_open("127.0.0.1", 5432)


@contextlib.contextmanager
def throwaway_database(
    prefix: str = "rdev_test", admin_url: str = POSTGRES_ADMIN_URL
) -> Iterator[str]:
    """A new, empty database (its SQLAlchemy URL), dropped with its connections afterwards.
    Skips the test when the server is not reachable."""
    if not postgres_available():
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432; PostgreSQL variant skipped")
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = admin_url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class PrivateServer:
    """A PostgreSQL server of its own (initdb, pg_ctl) on a free loopback port, for tests
    that stop and start the database itself. As root, the server runs as `postgres`."""

    def __init__(self, workdir: Path, port: int) -> None:
        self.workdir = workdir
        self.data = workdir / "data"
        self.port = port
        self.bindir = _postgres_bindir()

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(
            [*as_postgres, str(self.bindir / tool), *args],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.workdir / "log"),
            "-w",
            "start",
        )

    def stop(self) -> None:
        """Stop it as an operator would (fast: open connections are ended)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


def _postgres_bindir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    return Path(initdb).parent


@contextlib.contextmanager
def private_server() -> Iterator[PrivateServer]:
    """A started private PostgreSQL server, stopped and removed afterwards."""
    from rdev_common.broker import free_port

    workdir = Path(tempfile.mkdtemp(prefix="rdev-pg-"))
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres", "postgres")
    server = PrivateServer(workdir, free_port())
    try:
        server.init()
        server.start()
        yield server
    finally:
        with contextlib.suppress(Exception):
            server._run("pg_ctl", "-D", str(server.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(workdir, ignore_errors=True)
