"""Timestamps read back aware on SQLite, which keeps no time zone."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import create_engine, select

from rdev_common.db.tables import Base, OutboxRow


def test_a_timestamp_reads_back_in_utc_from_sqlite() -> None:
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine, tables=[OutboxRow.__table__])  # type: ignore[list-item]
    at = datetime(2026, 11, 28, 1, 2, 3, 456789, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            OutboxRow.__table__.insert(),  # type: ignore[attr-defined]
            {"id": "e1", "subject": "s", "payload": "{}", "created_at": at, "attempts": 0},
        )
        row = conn.execute(select(OutboxRow.created_at, OutboxRow.sent_at)).one()
    assert row.created_at == at and row.created_at.tzinfo is UTC
    assert row.sent_at is None
