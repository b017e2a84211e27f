"""The lifecycle feed against a real nats-server: bursts come as one batch, a pull request
that expired or died with the connection is renewed, a failed batch comes back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection
from dataclasses import replace
from typing import Any

import pytest
from nats.js.api import StreamConfig

from rdev_common.broker import EmbeddedNats, connect
from rdev_common.events import CloudEvent, CommandCompleted, Reason
from rdev_common.streams import lifecycle_consumer
from rdev_webhooks.adapters.nats_batches import PullBatches
from rdev_webhooks.domain.model import Endpoint, NewDelivery
from rdev_webhooks.domain.schedule import RetrySchedule
from rdev_webhooks.entrypoints.lifecycle import LifecycleIngest, consume_lifecycle
from tests.support import wait_for_async

STREAM, DURABLE = "T_LIFECYCLE", "t-runs"


@pytest.fixture
async def nc(nats_server: EmbeddedNats) -> AsyncIterator[Any]:
    client = await connect(nats_server.url, "pull-batches-test")
    js = client.jetstream()
    await js.add_stream(StreamConfig(name=STREAM, subjects=["rdev.runs.>"]))
    config = replace(lifecycle_consumer("t", ack_wait_s=1.0).config, durable_name=DURABLE)
    await js.add_consumer(STREAM, config)
    yield client
    await client.close()


def _event(n: int, project: str = "p") -> bytes:
    payload = CommandCompleted(
        command_id=f"c{n}", project=project, exit_code=0, reason=Reason.EXITED, duration_ms=1
    )
    return CloudEvent.wrap(payload, source="rdev/test", subject=f"c{n}", project=project).to_bytes()


async def _publish(nc: Any, *numbers: int) -> None:
    js = nc.jetstream()
    for n in numbers:
        await js.publish(f"rdev.runs.p.c{n}.completed", _event(n))


async def _pull_waiting(nc: Any) -> None:
    """Until the feed waits on the broker with a pull request open."""

    async def waiting() -> bool:
        info = await nc.jetstream().consumer_info(STREAM, DURABLE)
        return bool(info.num_waiting)

    await wait_for_async(waiting, 10, "a pull request open on the consumer", interval=0.01)


def _feed(nc: Any, size: int = 200, linger_s: float = 0.05, **kwargs: Any) -> PullBatches:
    return PullBatches(nc, STREAM, DURABLE, size, linger_s, **kwargs)


async def test_a_burst_comes_as_one_batch(nc: Any) -> None:
    feed = _feed(nc)
    await feed.start()
    batch = asyncio.create_task(feed.next_batch(5.0))
    await _pull_waiting(nc)
    for n in range(3):
        await _publish(nc, n)
        await asyncio.sleep(0.005)
    msgs = await batch
    assert [m.metadata.sequence.stream for m in msgs] == [1, 2, 3]
    for msg in msgs:
        await msg.ack()
    assert await feed.next_batch(0.2) == []
    await feed.close()


async def test_size_caps_a_batch(nc: Any) -> None:
    await _publish(nc, *range(7))
    feed = _feed(nc, size=3, linger_s=0.0)
    await feed.start()
    sizes: list[int] = []
    while sum(sizes) < 7:
        msgs = await feed.next_batch(2.0)
        assert msgs, "messages are waiting"
        sizes.append(len(msgs))
        for msg in msgs:
            await msg.ack()
    assert max(sizes) == 3
    await feed.close()


async def test_an_expired_pull_request_is_renewed(nc: Any) -> None:
    feed = _feed(nc, expires_s=0.2)
    await feed.start()
    assert await feed.next_batch(0.6) == []  # the first request expired meanwhile
    await _publish(nc, 1)
    (msg,) = await feed.next_batch(2.0)
    await msg.ack()
    await feed.close()


async def test_the_feed_resumes_after_the_broker_restarts(
    nc: Any, nats_server: EmbeddedNats
) -> None:
    feed = _feed(nc)
    await feed.start()
    assert await feed.next_batch(0.2) == []
    nats_server.stop()
    await wait_for_async(lambda: not nc.is_connected, 30, "the client to see the broker gone")
    nats_server.start()
    await wait_for_async(lambda: nc.is_connected, 30, "the client to reconnect")
    await _publish(nc, 1)
    got = await wait_for_async(lambda: feed.next_batch(1.0), 30, "the batch after the restart")
    assert [m.metadata.sequence.stream for m in got] == [1]
    await feed.close()


class FlakyStore:
    """Fails the first write, then records; keyed like the real store."""

    def __init__(self) -> None:
        self.endpoints = [Endpoint("w1", "p", "http://a/", ["*"], ["s"], True)]
        self.deliveries: dict[str, NewDelivery] = {}
        self.failures = 1

    async def enabled_endpoints(self, projects: Collection[str]) -> list[Endpoint]:
        return [e for e in self.endpoints if e.project in projects]

    async def add_deliveries(self, deliveries: list[NewDelivery]) -> int:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("database away")
        fresh = [d for d in deliveries if d.dedup_key not in self.deliveries]
        self.deliveries.update((d.dedup_key, d) for d in fresh)
        return len(fresh)


async def test_a_batch_that_failed_is_redelivered_and_recorded_once(nc: Any) -> None:
    store, stop, woken = FlakyStore(), asyncio.Event(), list[int]()
    ingest = LifecycleIngest(store, RetrySchedule(), lambda: woken.append(1), DURABLE)  # type: ignore[arg-type]
    task = asyncio.create_task(consume_lifecycle(_feed(nc), ingest, 0.2, stop))
    await _publish(nc, 1, 2, 3)
    await wait_for_async(lambda: len(store.deliveries) >= 3, 20, "three deliveries recorded")
    assert sorted(d.seq for d in store.deliveries.values()) == [1, 2, 3]
    assert store.failures == 0 and woken

    async def all_acked() -> bool:
        info = await nc.jetstream().consumer_info(STREAM, DURABLE)
        return info.num_ack_pending == 0 and info.num_pending == 0

    await wait_for_async(all_acked, 20, "every message acknowledged")
    stop.set()
    await asyncio.wait_for(task, 5)
