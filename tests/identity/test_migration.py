"""0002_identity runs forward on a database that already holds data, losing none."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from rdev_common.db.engine import sync_url
from rdev_common.db.migrate import upgrade
from tests.postgres import throwaway_database


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        return
    with throwaway_database("rdev_migrate") as url:
        yield url


def test_upgrading_from_0001_keeps_keys_and_projects(empty_db: str) -> None:
    upgrade(empty_db, "0001")
    engine = create_engine(sync_url(empty_db))
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO api_keys (id, name, secret_hash, prefix, scopes, created_at) "
                "VALUES ('k1', 'old', 'h1', 'rdev_x', '[\"admin\"]', CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO projects (id, workdir, env, secrets, command_policy, created_at, "
                "updated_at) VALUES ('p1', '/srv', '{}', '{}', '{}', CURRENT_TIMESTAMP, "
                "CURRENT_TIMESTAMP)"
            )
        )
    upgrade(empty_db)  # every head, as `rdev migrate` does
    upgrade(empty_db)  # and again: nothing to do
    with engine.connect() as conn:
        key = conn.execute(
            text("SELECT name, previous_secret_hash, previous_expires_at FROM api_keys")
        ).one()
        assert tuple(key) == ("old", None, None)
        assert conn.execute(text("SELECT id FROM projects")).scalar_one() == "p1"
        assert conn.execute(text("SELECT count(*) FROM outbox")).scalar_one() == 0
        assert conn.execute(text("SELECT count(*) FROM rate_limit_policies")).scalar_one() == 0
    engine.dispose()
