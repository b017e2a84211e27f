"""A private PostgreSQL cluster for one test module: `initdb` into a scratch directory
and `postgres` on a free loopback port (binaries from PATH, e.g. /usr/local/bin).
As root it runs as the `postgres` user, since PostgreSQL refuses to run as root.
When the binaries are missing, the server on 127.0.0.1:5432 is used if it answers."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from rdev_common.broker import free_port
from tests.support import port_open, wait_for

SHARED_ADMIN = os.environ.get(
    "RDEV_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _as_postgres() -> tuple[dict[str, int], str | None]:
    """Popen arguments that drop root to the postgres user, and its name."""
    if os.geteuid() != 0:
        return {}, None
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        user = pwd.getpwnam("nobody")
    return {"user": user.pw_uid, "group": user.pw_gid}, user.pw_name


@contextmanager
def private_postgres() -> Iterator[str]:
    """A fresh database's SQLAlchemy URL, on a private server when one can be made."""
    initdb, postgres = shutil.which("initdb"), shutil.which("postgres")
    if initdb is None or postgres is None:
        yield from _shared_database()
        return
    drop, owner = _as_postgres()
    root = Path(tempfile.mkdtemp(prefix="rdev-pg-"))
    if owner is not None:
        shutil.chown(root, owner, owner)
    data, port = root / "data", free_port()
    subprocess.run(
        [initdb, "-D", str(data), "-U", "rdev", "--auth=trust", "-E", "UTF8", "--locale=C"],
        capture_output=True,
        check=True,
        timeout=120,
        **drop,  # type: ignore[arg-type]
    )
    log = (root / "postgres.log").open("ab")
    server = subprocess.Popen(
        [postgres, "-D", str(data), "-p", str(port), "-k", str(root),
         "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=400",
         "-c", "fsync=off", "-c", "synchronous_commit=off"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        **drop,  # type: ignore[arg-type]
    )  # fmt: skip
    try:
        wait_for(lambda: port_open("127.0.0.1", port), 60, "private PostgreSQL did not start")
        import psycopg

        def created() -> bool:
            try:
                with psycopg.connect(
                    f"postgresql://rdev@127.0.0.1:{port}/postgres", autocommit=True
                ) as conn:
                    conn.execute("CREATE DATABASE rdev")
                return True
            except psycopg.OperationalError:  # still starting up
                return False

        wait_for(created, 60, "private PostgreSQL did not accept connections", interval=0.2)
        yield f"postgresql+psycopg://rdev@127.0.0.1:{port}/rdev"
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(root, ignore_errors=True)


def _shared_database() -> Iterator[str]:
    if not port_open("127.0.0.1", 5432):
        pytest.skip("no PostgreSQL binaries (initdb, postgres) and none on 127.0.0.1:5432")
    import psycopg

    name = f"rdev_replicas_{uuid.uuid4().hex[:10]}"
    admin = SHARED_ADMIN.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield SHARED_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
