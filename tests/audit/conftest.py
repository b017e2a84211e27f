"""Fixtures of the audit tests: a migrated database (SQLite and PostgreSQL), the audit service."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from rdev_common.broker import EmbeddedNats, connect
from rdev_common.db.migrate import upgrade
from rdev_common.settings import CommonSettings
from rdev_common.streams import ensure_streams
from tests.audit.support import AuditProcess, Db, env_for
from tests.postgres import throwaway_database


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A freshly migrated database of each kind (PostgreSQL skipped when not reachable)."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
        upgrade(url)
        yield url
        return
    with throwaway_database("rdev_audit") as url:
        upgrade(url)
        yield url


@pytest.fixture
def db(db_url: str) -> Iterator[Db]:
    database = Db(db_url)
    yield database
    database.close()


@pytest.fixture
async def js(nats_server: EmbeddedNats) -> AsyncIterator[Any]:
    nc = await connect(nats_server.url, "audit-test")
    jetstream = nc.jetstream()
    await ensure_streams(jetstream, CommonSettings())
    yield jetstream
    await nc.close()


@pytest.fixture
def audit_env(nats_server: EmbeddedNats, db_url: str, tmp_path: Path) -> dict[str, str]:
    return env_for(nats_server.url, db_url, tmp_path)


@pytest.fixture
def audit_service(audit_env: dict[str, str], tmp_path: Path) -> Iterator[AuditProcess]:
    service = AuditProcess(audit_env, tmp_path / "audit.log")
    service.start()
    yield service
    service.stop()
