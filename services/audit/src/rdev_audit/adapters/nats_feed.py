"""A durable consumer positioned from the database, delivering strictly in order.

The projection's tracking position, not the consumer's ack floor, says where to
read from: on start, after any failure and after a rebuild, the durable consumer
is reset to the sequence after the recorded position. Between resets it must
deliver every message once, in order (delivery sequence 1, 2, 3 …); anything
else (a redelivery, a gap) raises `OutOfOrder` so the caller re-positions. The
durable consumer stays visible to operators (`rdev events info` shows its lag).

A batch that is not full waits `linger_s` and is topped up once: a short
command's events (requested, started, completed) arrive within milliseconds of
each other, and one transaction for all of them costs about what one of three
did, and runs after the command instead of while it runs.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import structlog
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import StreamInfo

from rdev_audit.service_layer.projector import StreamMessage
from rdev_common.streams import DurableConsumer, ensure_consumer

log = structlog.get_logger()

# How long the top-up fetch after the linger waits when nothing more has arrived.
TOP_UP_WAIT_S = 0.02


class OutOfOrder(Exception):
    pass


class NatsPositionedFeed:
    def __init__(
        self,
        js: JetStreamContext,
        consumer: DurableConsumer,
        batch: int = 500,
        linger_s: float = 0.0,
    ) -> None:
        self.js = js
        self.consumer = consumer
        self.batch = batch
        self.linger_s = linger_s
        self.durable = consumer.durable
        self._sub: JetStreamContext.PullSubscription | None = None
        self._pending: list[Msg] = []
        self._next_delivery = 1

    async def position_at(self, next_seq: int) -> None:
        """Deliver from stream sequence `next_seq` on (never beyond the stream's end)."""
        await self.close()
        await ensure_consumer(self.js, self.consumer)
        info: StreamInfo = await self.js.stream_info(self.consumer.stream)
        end = (info.state.last_seq or 0) + 1
        first = info.state.first_seq or 1
        if next_seq < first and end > 1:
            # Retention removed events this projection never saw: they are gone for good.
            log.error(
                "events aged out before they were projected",
                stream=self.consumer.stream,
                missing_from=next_seq,
                missing_to=first - 1,
            )
        await self.js.reset_consumer(self.consumer.stream, self.durable, seq=min(next_seq, end))
        self._sub = await self.js.pull_subscribe_bind(self.durable, self.consumer.stream)
        self._next_delivery = 1
        log.info("consumer positioned", consumer=self.durable, seq=min(next_seq, end))

    async def next_batch(self, timeout_s: float = 1.0) -> list[StreamMessage]:
        """The next messages in order; empty when none arrived within `timeout_s`.

        A batch that is not full is topped up once, `linger_s` after its first messages.
        """
        msgs = await self._fetch(self.batch, timeout_s)
        if msgs and len(msgs) < self.batch and self.linger_s > 0:
            await asyncio.sleep(self.linger_s)
            msgs += await self._fetch(self.batch - len(msgs), TOP_UP_WAIT_S)
        for msg in msgs:
            meta = msg.metadata
            if meta.num_delivered != 1 or meta.sequence.consumer != self._next_delivery:
                raise OutOfOrder(f"{self.durable}: delivery {meta.sequence.consumer}")
            self._next_delivery += 1
        self._pending = msgs
        return [_message(m) for m in msgs]

    async def _fetch(self, batch: int, timeout_s: float) -> list[Msg]:
        assert self._sub is not None, "position_at() first"
        try:
            return await self._sub.fetch(batch, timeout=timeout_s)
        except (NatsTimeoutError, TimeoutError):
            return []

    async def ack(self) -> None:
        """Acknowledge the last batch, once its position is committed."""
        for msg in self._pending:
            await msg.ack()
        self._pending = []

    async def close(self) -> None:
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception as exc:  # a dead connection: nothing left to release
                log.debug("unsubscribe failed", consumer=self.durable, error=repr(exc))
            self._sub = None
        self._pending = []


def _message(msg: Msg) -> StreamMessage:
    meta = msg.metadata
    stored = meta.timestamp or datetime.fromtimestamp(0, UTC)
    return StreamMessage(meta.sequence.stream, msg.subject, msg.data, stored, msg.headers)
