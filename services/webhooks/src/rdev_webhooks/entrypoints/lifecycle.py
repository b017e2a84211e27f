"""The lifecycle consumer: record deliveries, then ack, then wake the dispatcher."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import structlog
from nats.aio.msg import Msg
from pydantic import ValidationError

from rdev_common import streams
from rdev_webhooks.domain.schedule import RetrySchedule
from rdev_webhooks.service_layer.ingest import ingest
from rdev_webhooks.service_layer.ports import DeliveryStore

log = structlog.get_logger()


def lifecycle_handler(
    store: DeliveryStore, schedule: RetrySchedule, wake: Callable[[], None]
) -> Callable[[Msg], Awaitable[None]]:
    async def handle(msg: Msg) -> None:
        seq = msg.metadata.sequence.stream
        try:
            added = await ingest(
                store,
                msg.data,
                stream=streams.LIFECYCLE,
                seq=seq,
                now=datetime.now(UTC),
                schedule=schedule,
                subject=msg.subject,
            )
        except (ValidationError, ValueError, UnicodeDecodeError):
            log.error("unreadable lifecycle event terminated", subject=msg.subject, seq=seq)
            await msg.term()
            return
        # Acked only after the deliveries are committed; a redelivery adds nothing twice.
        await msg.ack()
        if added:
            wake()

    return handle
