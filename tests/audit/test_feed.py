"""The positioned feed coalesces a burst into one batch, in order, and still reads on after it."""

from __future__ import annotations

import asyncio

from nats.js import JetStreamContext

from rdev_audit.adapters.nats_feed import NatsPositionedFeed
from rdev_common import streams
from tests.audit.support import admin_event, publish_all

BURST = [admin_event("project", "created", f"p{i}", "k-admin", {"id": f"p{i}"}) for i in range(3)]


async def test_a_burst_within_the_linger_is_one_batch(js: JetStreamContext) -> None:
    feed = NatsPositionedFeed(js, streams.admin_consumer("audit"), batch=500, linger_s=0.3)
    await feed.position_at(1)
    try:

        async def burst() -> None:
            await publish_all(js, BURST[:1])
            await asyncio.sleep(0.05)
            await publish_all(js, BURST[1:])

        publishing = asyncio.create_task(burst())
        batch = await feed.next_batch(timeout_s=5)
        await publishing
        assert [m.seq for m in batch] == [1, 2, 3]
        await feed.ack()

        await publish_all(js, [admin_event("project", "deleted", "p0", "k-admin", {"id": "p0"})])
        assert [m.seq for m in await feed.next_batch(timeout_s=5)] == [4]
        await feed.ack()
        assert await feed.next_batch(timeout_s=0.2) == []
    finally:
        await feed.close()
