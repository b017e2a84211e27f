"""Timestamps are stored in UTC and read back aware on SQLite, which keeps no time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import create_engine, select

from rdev_common.db.tables import Base, OutboxRow


def test_a_timestamp_reads_back_in_utc_from_sqlite() -> None:
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine, tables=[OutboxRow.__table__])  # type: ignore[list-item]
    at = datetime(2026, 11, 28, 1, 2, 3, 456789, tzinfo=UTC)
    elsewhere = datetime(2026, 11, 28, 10, 0, tzinfo=timezone(timedelta(hours=2)))
    with engine.begin() as conn:
        conn.execute(
            OutboxRow.__table__.insert(),  # type: ignore[attr-defined]
            [
                {"id": "e1", "subject": "s", "payload": "{}", "created_at": at, "attempts": 0},
                {
                    "id": "e2",
                    "subject": "s",
                    "payload": "{}",
                    "created_at": elsewhere,
                    "attempts": 0,
                },
            ],
        )
        rows = conn.execute(
            select(OutboxRow.created_at, OutboxRow.sent_at).order_by(OutboxRow.id)
        ).all()
    assert [r.created_at for r in rows] == [at, elsewhere]
    assert rows[1].created_at.hour == 8, "an offset is converted to UTC, not dropped"
    assert all(r.created_at.tzinfo is UTC and r.sent_at is None for r in rows)
