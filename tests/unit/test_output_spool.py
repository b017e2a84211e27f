"""The output queue and its spool on disk: order kept, room bounded, loss reported."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from rdev_executor.adapters.file_spool import FileSpool
from rdev_executor.domain.output import Batch
from rdev_executor.service_layer.output_queue import OutputQueue


def batch(n: int, size: int = 1000) -> Batch:
    text = f"{n}:".ljust(size, "x")
    return Batch(stream="stdout", first_line=n, parts=[text], count=1, size=len(text) + 1)


class Broker:
    """Stores batches while up; while down, a publish waits for it to come back."""

    def __init__(self) -> None:
        self.up = asyncio.Event()
        self.up.set()
        self.stored: list[int] = []

    async def publish(self, b: Batch) -> None:
        await self.up.wait()
        self.stored.append(b.first_line)


def test_spool_segments_are_read_in_order_and_removed_once_stored(tmp_path: Path) -> None:
    spool = FileSpool(tmp_path / "spool", max_bytes=1024**2, segment_bytes=3000)
    run = spool.open("cmd")
    for n in range(1, 11):
        assert run.append(batch(n))
    assert len(run.segments) == 4  # three records of ≈1 KB per segment
    seen = []
    for _ in range(10):
        b = run.peek()
        seen.append((b.first_line, b.lines[0][:3]))
        run.pop()
    assert seen == [(n, f"{n}:".ljust(3, "x")) for n in range(1, 11)]
    assert spool.used == 0 and len(run.segments) == 1
    run.close()
    assert not list((tmp_path / "spool").glob("*/cmd.*"))


def test_spool_refuses_past_its_bound_and_gives_room_back(tmp_path: Path) -> None:
    spool = FileSpool(tmp_path / "spool", max_bytes=2500)
    first, second = spool.open("a"), spool.open("b")
    assert first.append(batch(1)) and second.append(batch(1))
    assert not first.append(batch(2)), "the bound is the executor's, across runs"
    second.close()
    assert first.append(batch(2))


def test_a_spool_directory_of_a_dead_executor_is_swept(tmp_path: Path) -> None:
    gone = FileSpool(tmp_path, max_bytes=10**6)
    gone.open("cmd").append(batch(1))
    live = FileSpool(tmp_path, max_bytes=10**6)
    live.open("cmd").append(batch(1))
    assert len(list(tmp_path.iterdir())) == 2
    live.sweep()
    assert len(list(tmp_path.iterdir())) == 2, "both locks are held"
    assert gone._lock is not None
    os.close(gone._lock)  # as its process's death would
    live.sweep()
    assert list(tmp_path.iterdir()) == [live._dir]


async def test_reading_goes_on_while_the_broker_is_away_and_order_is_kept(
    tmp_path: Path,
) -> None:
    broker = Broker()
    spool = FileSpool(tmp_path, max_bytes=10**6, segment_bytes=4000)
    queue = OutputQueue(broker.publish, "cmd", memory_bytes=3000, spool=spool, stall_s=0.05)
    storing = asyncio.create_task(queue.run())
    await queue.put(batch(1))
    await asyncio.sleep(0.01)
    broker.up.clear()  # the broker goes away with batch 2 in flight
    for n in range(2, 41):
        assert await asyncio.wait_for(queue.put(batch(n)), 5), "put never waits past the stall"
    assert queue._spooled > 0
    queue.close()
    broker.up.set()
    await asyncio.wait_for(storing, 5)
    assert broker.stored == list(range(1, 41))
    assert queue.stored_lines == 40 and spool.used == 0
    queue.discard()


async def test_a_healthy_broker_holds_the_reader_back_instead_of_spooling(tmp_path: Path) -> None:
    gate = asyncio.Event()
    stored: list[int] = []

    async def slow(b: Batch) -> None:
        await gate.wait()
        gate.clear()
        stored.append(b.first_line)

    spool = FileSpool(tmp_path, max_bytes=10**6)
    queue = OutputQueue(slow, "cmd", memory_bytes=2500, spool=spool, stall_s=30)
    storing = asyncio.create_task(queue.run())
    await queue.put(batch(1))
    await queue.put(batch(2))
    third = asyncio.create_task(queue.put(batch(3)))
    await asyncio.sleep(0.05)
    assert not third.done(), "a full queue waits for a broker that is storing"
    gate.set()
    assert await asyncio.wait_for(third, 5)
    assert spool._dir is None, "nothing went to disk"
    queue.close()
    while not storing.done():
        gate.set()
        await asyncio.sleep(0.01)
    assert stored == [1, 2, 3]


async def test_when_the_spool_is_full_too_the_rest_is_dropped_and_counted(
    tmp_path: Path,
) -> None:
    broker = Broker()
    broker.up.clear()
    spool = FileSpool(tmp_path, max_bytes=5000)
    queue = OutputQueue(broker.publish, "cmd", memory_bytes=2000, spool=spool, stall_s=0.05)
    storing = asyncio.create_task(queue.run())
    results = [await asyncio.wait_for(queue.put(batch(n)), 5) for n in range(1, 21)]
    first_drop = results.index(False)
    assert all(results[:first_drop]) and not any(results[first_drop:])
    assert queue.dropped_bytes >= (20 - first_drop) * 1000
    queue.close()
    broker.up.set()
    await asyncio.wait_for(storing, 5)
    assert broker.stored == list(range(1, first_drop + 1)), "a prefix, in order"
    assert queue.stored_lines == first_drop
    queue.discard()


def test_a_line_cut_by_closing_the_output_is_flagged_partial() -> None:
    from rdev_executor.domain.output import OutputBatcher

    ended, cut = OutputBatcher(1024, 4096, 10**6), OutputBatcher(1024, 4096, 10**6)
    for batcher in (ended, cut):
        batcher.feed("stdout", b"whole\nhalf a li")
    assert [b.partial for b in ended.finish()] == [[]]
    (last,) = cut.finish(cut=True)
    assert last.lines == ["whole", "half a li"] and last.partial == [1]


def test_output_dropped_is_counted_and_no_longer_kept() -> None:
    from rdev_executor.domain.output import OutputBatcher

    batcher = OutputBatcher(1024, 4096, 10**6)
    batcher.feed("stdout", b"kept\n")
    assert batcher.flush(tails=False)[0].lines == ["kept"]
    batcher.feed("stdout", b"held\nand a ta")
    batcher.stop_accepting()
    assert batcher.feed("stdout", b"il\nmore\n") == [] and batcher.finish() == []
    assert batcher.truncated and batcher.bytes == len(b"kept\n")
    assert batcher.dropped_bytes == len(b"held\nand a ta") + len(b"il\nmore\n")
