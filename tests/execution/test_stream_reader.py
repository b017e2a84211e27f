"""StreamReader against a real JetStream: in order, and read-ahead bounded in bytes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest

from rdev_api.adapters.stream_reader import StreamReader
from rdev_common.broker import EmbeddedNats
from tests.support import wait_for_async

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

    async def all_pulled_arrived() -> bool:
        """The reader read ahead, and every message the broker sent it is in its queue."""
        info = await nc.jetstream().consumer_info("T", reader.consumer)
        sent = info.delivered.stream_seq or 0
        return sent > 1 and info.num_waiting == 0 and reader.queue.qsize() >= sent - 1

    # The consumer stalls; once whatever was pulled has arrived, nothing more comes.
    await wait_for_async(all_pulled_arrived, 30, "the reader's read-ahead to arrive")
    held = reader.queue.qsize() * SIZE
    await stream.aclose()  # type: ignore[attr-defined]
    assert first.seq == 1
    assert held <= 2 * 1_000_000, f"{held} bytes held for a stalled reader"


async def test_a_bytes_bounded_reader_pulls_no_more_often_for_small_messages(
    nats_server: EmbeddedNats,
) -> None:
    """With max_bytes the server ends every full pull with "409 Batch Completed"; that
    is not a pull ending early, and must not make the reader pull again and again."""
    watcher = await nats.connect(nats_server.url)
    publisher = await nats.connect(nats_server.url)
    client = await nats.connect(nats_server.url)
    js = publisher.jetstream()
    await js.add_stream(name="S", subjects=["s.>"])
    pulls = 0

    async def count(_: object) -> None:
        nonlocal pulls
        pulls += 1

    await watcher.subscribe("$JS.API.CONSUMER.MSG.NEXT.S.>", cb=count)
    reader = StreamReader(client, "S", ["s.x"], follow=True, batch=32, max_bytes=1_000_000)

    async def read(n: int) -> list[int]:
        seqs = []
        async for m in reader:
            seqs.append(m.seq)
            if len(seqs) == n:
                break
        return seqs

    reading = asyncio.create_task(read(640))
    for _ in range(640):
        await js.publish("s.x", b"x" * 100)
    assert await asyncio.wait_for(reading, 30) == list(range(1, 641))
    await watcher.flush()
    for conn in (watcher, publisher, client):
        await conn.close()
    assert pulls <= 640 // 32 + 3, f"{pulls} pulls for 640 messages in batches of 32"


async def test_a_message_larger_than_a_pull_may_take_is_still_read(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path / "nats", config="max_payload: 8MB\n")
    server.start()
    client = await nats.connect(server.url)
    try:
        js = client.jetstream()
        await js.add_stream(name="B", subjects=["b.>"])
        for size in (1000, 3_000_000, 1000):
            await js.publish("b.x", b"x" * size)
        reader = StreamReader(client, "B", ["b.x"], follow=False, batch=8, max_bytes=1_000_000)
        got = await asyncio.wait_for(_sizes(reader), 10)
        assert got == [1000, 3_000_000, 1000]
    finally:
        await client.close()
        server.stop(kill=True)


async def _sizes(reader: StreamReader) -> list[int]:
    return [len(m.data) async for m in reader]
