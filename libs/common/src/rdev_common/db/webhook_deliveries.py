"""The one way a delivery enters `webhook_deliveries`, a table of the webhooks service.

The webhooks service adds the deliveries its lifecycle consumer plans; the api adds
one on a redeliver and a batch on a replay. Both use this INSERT, so a delivery is
pending and due the same way whoever asks for it, and a known `dedup_key` (an event
recorded before, or by a concurrent consumer meanwhile) is skipped without failing
the rest of the batch.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from rdev_common.db.tables import WebhookDeliveryRow

PENDING = "pending"


class NewDeliveryFields(Protocol):
    """What a new delivery is made of (the api's and the webhooks service's own types)."""

    @property
    def id(self) -> str: ...
    @property
    def webhook_id(self) -> str: ...
    @property
    def project(self) -> str: ...
    @property
    def event_id(self) -> str: ...
    @property
    def event_type(self) -> str: ...
    @property
    def stream(self) -> str: ...
    @property
    def seq(self) -> int: ...
    @property
    def dedup_key(self) -> str: ...
    @property
    def payload(self) -> str: ...


def pending_delivery(d: NewDeliveryFields, due: datetime) -> dict[str, Any]:
    """A new delivery's row: pending, no attempt yet, due at `due`."""
    return dict(
        id=d.id,
        webhook_id=d.webhook_id,
        project=d.project,
        event_id=d.event_id,
        event_type=d.event_type,
        stream=d.stream,
        seq=d.seq,
        dedup_key=d.dedup_key,
        payload=d.payload,
        status=PENDING,
        attempts=0,
        next_attempt_at=due,
        created_at=due,
        updated_at=due,
    )


async def add_deliveries(session: AsyncSession, rows: list[dict[str, Any]]) -> int:
    """Insert `rows` (of `pending_delivery`), skipping known dedup keys; how many were
    added. The caller commits."""
    if not rows:
        return 0
    dialect = (await session.connection()).dialect.name
    insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
    statement = (
        insert(WebhookDeliveryRow)
        .on_conflict_do_nothing(index_elements=[WebhookDeliveryRow.dedup_key])
        .returning(WebhookDeliveryRow.id)
    )
    return len((await session.execute(statement, rows)).all())
