"""Reads a run's events from RDEV_RUNS with an ordered consumer, from any sequence."""

from __future__ import annotations

from collections.abc import AsyncIterator

from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from rdev_api.service_layer.ports import StoredEvent
from rdev_common import streams

# A slow SSE client leaves messages waiting here; past these limits the ordered
# consumer drops and re-creates itself from the last sequence it handed out, so
# memory stays bounded and nothing is skipped.
PENDING_MSGS = 256
PENDING_BYTES = 32 * 1024 * 1024


class NatsRunReader:
    def __init__(self, js: JetStreamContext, idle_heartbeat_s: float = 1.0) -> None:
        self.js = js
        self.idle_heartbeat_s = idle_heartbeat_s

    async def events(self, filter_subject: str, start_seq: int) -> AsyncIterator[StoredEvent]:
        """Every stored event matching `filter_subject` from `start_seq` on, then live ones."""
        config = ConsumerConfig(inactive_threshold=30.0)
        if start_seq > 1:
            config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
            config.opt_start_seq = start_seq
        sub = await self.js.subscribe(
            filter_subject,
            stream=streams.RUNS,
            ordered_consumer=True,
            config=config,
            idle_heartbeat=self.idle_heartbeat_s,
            pending_msgs_limit=PENDING_MSGS,
            pending_bytes_limit=PENDING_BYTES,
            deliver_policy=config.deliver_policy if start_seq > 1 else DeliverPolicy.ALL,
        )
        try:
            async for msg in sub.messages:
                yield StoredEvent(msg.metadata.sequence.stream, msg.subject, msg.data)
        finally:
            await sub.unsubscribe()

    async def last_seq(self, subject: str) -> int | None:
        """Stream sequence of the last event on `subject`, or None."""
        try:
            msg = await self.js.get_last_msg(streams.RUNS, subject, direct=True)
        except NotFoundError:
            return None
        return int(msg.seq or 0)
