"""Fixtures of the identity tests: a migrated database per backend, a private broker."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from rdev_common.broker import EmbeddedNats
from rdev_common.db.engine import create_engine, session_factory
from rdev_common.db.migrate import upgrade
from tests.postgres import throwaway_database

BACKENDS = ["sqlite", "postgresql"]


def fresh_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database of `backend`, dropped afterwards."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / f'identity-{uuid.uuid4().hex[:6]}.db'}"
        upgrade(url)
        yield url
        return
    with throwaway_database("rdev_identity") as url:
        upgrade(url)
        yield url


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from fresh_database(request.param, tmp_path)


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[object]:
    engine = create_engine(database_url)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    """One nats-server for a module's api replicas."""
    server = EmbeddedNats(tmp_path_factory.mktemp("identity-nats"))
    server.start()
    yield server
    server.stop(kill=True)
