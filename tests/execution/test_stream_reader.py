"""StreamReader against a real JetStream: in order, and read-ahead bounded in bytes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import nats
import pytest

from rdev_common.broker import EmbeddedNats
from rdev_common.reader import StreamReader

SIZE = 300_000


@pytest.fixture
async def nc(nats_server: EmbeddedNats) -> AsyncIterator[nats.NATS]:
    client = await nats.connect(nats_server.url)
    js = client.jetstream()
    await js.add_stream(name="T", subjects=["t.>"])
    for i in range(20):
        await js.publish("t.x", bytes([i]) * SIZE)
    yield client
    await client.close()


async def test_pulls_bounded_in_bytes_deliver_every_message_in_order(nc: nats.NATS) -> None:
    reader = StreamReader(nc, "T", ["t.x"], follow=False, batch=32, max_bytes=1_000_000)
    got = [(m.seq, m.data[0], len(m.data)) async for m in reader]
    assert got == [(i + 1, i, SIZE) for i in range(20)]


async def test_a_stalled_reader_holds_at_most_two_pulls_of_bytes(nc: nats.NATS) -> None:
    reader = StreamReader(nc, "T", ["t.x"], follow=True, batch=32, max_bytes=1_000_000)
    stream = aiter(reader)
    first = await anext(stream)
    await asyncio.sleep(0.3)  # the consumer stalls; whatever was pulled has arrived
    held = reader.queue.qsize() * SIZE
    await stream.aclose()  # type: ignore[attr-defined]
    assert first.seq == 1
    assert held <= 2 * 1_000_000, f"{held} bytes held for a stalled reader"
