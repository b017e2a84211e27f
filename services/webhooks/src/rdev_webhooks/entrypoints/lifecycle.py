"""The event consumers (run lifecycle, admin changes): fetch a batch, record its
deliveries, ack, wake the dispatcher.

Events are taken in batches because nearly all of them match no endpoint, and
then the whole cost of an event is its share of the batch's overhead: one
endpoints query per batch, one ack per event, no span. After a batch's first
event the feed lingers a few milliseconds so the rest of a burst (a run's
requested, started and completed) joins it.

Nothing is acked before its deliveries are committed: a crash or a database
error leaves the batch un-acked, and JetStream redelivers it after the ack wait.
A redelivered event adds nothing twice (each delivery has a `dedup_key`).
Events that match an endpoint get a consumer span each, a child of the span
that published them; events that match nothing get none.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from nats.aio.msg import Msg

from rdev_common.db import outage
from rdev_common.metrics import observe_consumed
from rdev_common.telemetry import consume_span
from rdev_webhooks.adapters.nats_batches import PullBatches
from rdev_webhooks.domain.schedule import RetrySchedule
from rdev_webhooks.service_layer.ingest import Incoming, plan
from rdev_webhooks.service_layer.ports import DeliveryStore

log = structlog.get_logger()


@dataclass
class LifecycleIngest:
    """Records the deliveries of a batch of lifecycle messages, then acks them."""

    store: DeliveryStore
    schedule: RetrySchedule
    wake: Callable[[], None]
    durable: str

    async def handle(self, msgs: Sequence[Msg]) -> None:
        """Record, then ack; on failure nothing is acked and JetStream redelivers."""
        try:
            events = [_incoming(m) for m in msgs]
            now = datetime.now(UTC)
            batch = await plan(self.store, events, now=now, schedule=self.schedule)
            matched = [msgs[i] for i in batch.matched]
            with contextlib.ExitStack() as spans:  # SQL statements join the last span
                for msg in matched:
                    spans.enter_context(consume_span(msg))
                added = await self.store.add_deliveries(batch.deliveries)
        except Exception as exc:
            observe_consumed(self.durable, msgs, "error")
            if not outage.said(exc):
                log.exception("recording deliveries failed; the batch will be redelivered")
            return
        if added:
            self.wake()
        observe_consumed(self.durable, msgs, "ok")
        try:
            await _settle(msgs, set(batch.unreadable))
        except Exception as exc:  # broker away: what was not acked is redelivered
            log.warning("ack failed", consumer=self.durable, error=repr(exc))


async def _settle(msgs: Sequence[Msg], unreadable: set[int]) -> None:
    """Ack every recorded message; terminate the unreadable ones, which no retry can fix."""
    for i, msg in enumerate(msgs):
        if i in unreadable:
            seq = msg.metadata.sequence.stream
            log.error("unreadable lifecycle event terminated", subject=msg.subject, seq=seq)
            await msg.term()
        else:
            await msg.ack()


async def consume_lifecycle(
    feed: PullBatches, ingest: LifecycleIngest, wait_s: float, stop: asyncio.Event
) -> None:
    """Hand batches of the feed to `ingest` until `stop` is set."""
    await feed.start()
    try:
        while not stop.is_set():
            try:
                msgs = await feed.next_batch(wait_s)
            except Exception as exc:  # broker away: keep trying
                log.warning("fetch failed", consumer=ingest.durable, error=repr(exc))
                await asyncio.sleep(0.5)
                continue
            if stop.is_set():
                await _hand_back(msgs)
                return
            try:
                if msgs:
                    await ingest.handle(msgs)
            except Exception:  # never seen; the loop must outlive it, the batch is redelivered
                log.exception("handling a batch failed", consumer=ingest.durable)
    finally:
        await _hand_back(await feed.close())


async def _hand_back(msgs: Sequence[Msg]) -> None:
    """Nak what will not be handled, so it is redelivered now rather than after the ack wait."""
    for msg in msgs:
        with contextlib.suppress(Exception):
            await msg.nak()


def _incoming(msg: Msg) -> Incoming:
    return Incoming(msg.data, msg.metadata.stream, msg.metadata.sequence.stream, msg.subject)
