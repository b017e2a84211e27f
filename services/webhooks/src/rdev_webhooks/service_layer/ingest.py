"""Turn a lifecycle event into one delivery per matching, enabled registration."""

from __future__ import annotations

from datetime import datetime, timedelta

import uuid6

from rdev_common.events import CloudEvent
from rdev_common.subjects import parse_run_subject
from rdev_common.webhook_rules import matches
from rdev_webhooks.domain.model import NewDelivery
from rdev_webhooks.domain.schedule import RetrySchedule
from rdev_webhooks.service_layer.ports import DeliveryStore


def delivery_id() -> str:
    """`msg_<uuid7 hex>`: the `webhook-id` header, time-ordered for cursor pages."""
    return "msg_" + uuid6.uuid7().hex


async def ingest(
    store: DeliveryStore,
    raw: bytes,
    *,
    stream: str,
    seq: int,
    now: datetime,
    schedule: RetrySchedule,
    subject: str | None = None,
) -> int:
    """Record deliveries for one event; idempotent, so a redelivered event adds nothing."""
    event = CloudEvent.from_bytes(raw)
    project = event.project or (parse_run_subject(subject)[0] if subject else None)
    if not project:
        return 0
    due = now + timedelta(seconds=schedule.first_delay())
    deliveries = [
        NewDelivery(
            id=delivery_id(),
            webhook_id=endpoint.id,
            project=project,
            event_id=event.id,
            event_type=event.type,
            stream=stream,
            seq=seq,
            dedup_key=f"{endpoint.id}:{event.id}",
            payload=raw.decode(),
            next_attempt_at=due,
        )
        for endpoint in await store.endpoints_of(project)
        if endpoint.enabled and matches(endpoint.events, event.type)
    ]
    return await store.add_deliveries(deliveries) if deliveries else 0
