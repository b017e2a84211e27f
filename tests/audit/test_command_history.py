"""The projector in-process on a real database: idempotent batches, and long command
histories paged through the api's read adapter."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rdev_api.adapters.sqlalchemy_audit_reader import SqlAlchemyAuditReader
from rdev_audit.adapters.sqlalchemy_projection import SqlAlchemyProjectionUnitOfWork
from rdev_audit.service_layer.projector import (
    Resync,
    Source,
    StreamMessage,
    current_position,
    project,
)
from rdev_common import subjects
from rdev_common.db.engine import create_engine, session_factory
from rdev_common.ids import new_id
from tests.audit.support import Db, run_events

SOURCE = Source("RDEV_LIFECYCLE", "lifecycle")


def lifecycle_messages(count: int) -> list[StreamMessage]:
    messages = []
    for i in range(count):
        for subject, event in run_events("hist", new_id(), "k1", exit_code=i % 3):
            if subject.endswith(".output"):
                continue
            if subject.startswith(subjects.COMMANDS_PREFIX):  # as RDEV_LIFECYCLE stores it
                subject = subjects.run_event("hist", event.subject, "requested")
            seq = len(messages) + 1
            messages.append(StreamMessage(seq, subject, event.to_bytes(), datetime.now(UTC)))
    return messages


async def test_history_pages_and_idempotent_batches(db_url: str, db: Db) -> None:
    engine = create_engine(db_url)
    sessions = session_factory(engine)
    uow = lambda: SqlAlchemyProjectionUnitOfWork(engine)  # noqa: E731
    now = lambda: datetime.now(UTC)  # noqa: E731
    messages = lifecycle_messages(25)
    try:
        start = await current_position(uow(), SOURCE.stream)
        position = await project(uow(), SOURCE, start, messages[:40], now)
        assert await project(uow(), SOURCE, position, messages[:40], now) == position  # redelivered
        with pytest.raises(Resync):  # a stale position never writes on top of the chain
            await project(uow(), SOURCE, start, messages[:41], now)
        position = await project(uow(), SOURCE, position, messages, now)
        assert position.last_seq == 75
        assert db.scalar("SELECT count(*) FROM audit_log") == 75

        reader = SqlAlchemyAuditReader(sessions)
        seen, cursor = [], None
        for _ in range(5):
            page, cursor = await reader.command_history("hist", None, cursor, 10)
            seen += page
            if cursor is None:
                break
        assert len(seen) == 25 and len({c.id for c in seen}) == 25
        assert [c.requested_at for c in seen] == sorted(
            (c.requested_at for c in seen), reverse=True
        )
        assert {c.status for c in seen} == {"completed"}
        failed, _ = await reader.command_history("hist", "completed", None, 100)
        assert sorted(c.exit_code for c in failed) == sorted(i % 3 for i in range(25))
    finally:
        await engine.dispose()
