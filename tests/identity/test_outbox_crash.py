"""A kill between commit and publish loses no admin event and publishes none twice.

Replica one commits admin changes with its relay switched off (RDEV_OUTBOX_RELAY_ENABLED=false
stands for "killed before the relay ran") and is SIGKILLed. Replica two, started on the same
database, publishes what was committed, once, even when it is itself restarted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from rdev_common.broker import EmbeddedNats
from rdev_common.db.engine import sync_url
from tests.identity.conftest import BACKENDS, fresh_database
from tests.identity.support import ADMIN_KEY_PREFIX, ApiProcess, create_key, create_project
from tests.identity.test_http_replicas import admin_events
from tests.support import wait_for


@pytest.fixture(params=BACKENDS)
def crash_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from fresh_database(request.param, tmp_path)


def unsent_rows(url: str) -> list[str]:
    engine = create_engine(sync_url(url))
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id FROM outbox WHERE sent_at IS NULL ORDER BY id"))
        found = [r[0] for r in rows]
    engine.dispose()
    return found


def test_a_kill_between_commit_and_publish_loses_nothing(
    nats_server: EmbeddedNats, crash_db: str, tmp_path: Path
) -> None:
    admin = ADMIN_KEY_PREFIX + "crashcrashcrash0"
    first = ApiProcess(
        tmp_path, nats_server.url, crash_db, admin, {"RDEV_OUTBOX_RELAY_ENABLED": "false"}
    ).start()
    create_project(first, "survivor", tmp_path / "survivor")
    key = create_key(first, scopes=["commands:read"])
    first.kill()

    pending = unsent_rows(crash_db)
    assert len(pending) == 2, "both changes were committed with their events"
    assert admin_events(nats_server.url) == [], "nothing was published before the kill"

    second = ApiProcess(tmp_path, nats_server.url, crash_db, admin)
    second.start()
    try:
        wait_for(lambda: not unsent_rows(crash_db), 15, "the relay never published the outbox")
        second.stop()
        second.start()  # a restart republishes nothing: every row is marked sent
        published = admin_events(nats_server.url)
    finally:
        second.stop()
    assert sorted(msg_id for _, msg_id in published) == sorted(pending)
    subjects = {event["subject"] for event, _ in published}
    assert subjects == {"survivor", key["id"]}
    types = sorted(event["type"] for event, _ in published)
    assert types == ["dev.rdev.api_key.created.v1", "dev.rdev.project.created.v1"]
