"""A run's output from its pipes into its queue, and from the queue to the broker."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import structlog

from rdev_common.events import CommandRequested, OutputBatch
from rdev_executor.domain.output import Batch, OutputBatcher
from rdev_executor.service_layer.output_queue import OutputQueue
from rdev_executor.service_layer.ports import Chunk, EventLog, PayloadTooLarge, Process

log = structlog.get_logger()

# Output still open this long after the shell exited (a background child holding
# the pipe), counted while the executor is free to read it, is cut off by killing
# the process group; still open as long after that, it is no longer read.
EOF_GRACE_S = 2.0


async def _arrives_soon(pending: asyncio.Future[Chunk]) -> bool:
    """True if a chunk read from the pipe is a few event-loop turns from delivery.

    On a busy machine a timer can fire before data the pipe already holds has made
    its way through the reader to here; an unterminated line must not be sent as a
    partial piece then.
    """
    for _ in range(8):
        await asyncio.sleep(0)
        if pending.done():
            return True
    return False


@dataclass
class BatchPublisher:
    events: EventLog
    req: CommandRequested

    async def __call__(self, b: Batch) -> None:
        """Store one batch; one the broker finds too large goes as two halves, in order
        (a batch of its usual size never is, but one of many flagged lines, listed in
        its headers, or one read under a small broker limit can be)."""
        try:
            await self.events.publish_output(
                OutputBatch(
                    command_id=self.req.command_id,
                    stream=b.stream,
                    first_line=b.first_line,
                    text=b.text.encode(),
                    partial=tuple(b.partial),
                    cr=tuple(b.cr),
                ),
                project=self.req.project,
            )
        except PayloadTooLarge:
            if b.count < 2:
                raise
            first, second = b.halves()
            await self(first)
            await self(second)


@dataclass
class OutputPump:
    """Reads a run's output, batches it and queues the batches; never waits on the
    broker itself (the queue decides when reading waits)."""

    batcher: OutputBatcher
    queue: OutputQueue
    batch_age_s: float
    tail_idle_s: float
    cut: bool = False  # the output was closed by rdev rather than ended

    async def run(self, chunks: AsyncIterator[Chunk]) -> None:
        try:
            await self._read(chunks)
            await self._put(self.batcher.finish(cut=self.cut))
        finally:
            self.queue.close()

    async def _put(self, batches: list[Batch]) -> None:
        for b in batches:
            if not await self.queue.put(b):
                self.batcher.stop_accepting()

    async def _read(self, chunks: AsyncIterator[Chunk]) -> None:
        batcher, age, tail_idle = self.batcher, self.batch_age_s, self.tail_idle_s
        pending: asyncio.Future[Chunk] = asyncio.ensure_future(anext(chunks))
        opened_at = last_read = time.monotonic()
        try:
            while True:
                # An open batch goes out `age` after it opened; an unterminated line (a
                # prompt, a progress bar) only after the output has been idle `tail_idle`,
                # since a piece sent early must be flagged partial and ended later.
                deadlines = []
                if batcher.open_batch_size:
                    deadlines.append(opened_at + age)
                if batcher.has_tail:
                    deadlines.append(last_read + tail_idle)
                wait_s = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
                done, _ = await asyncio.wait({pending}, timeout=wait_s)
                if not done:
                    idle = time.monotonic() - last_read >= tail_idle
                    if idle and await _arrives_soon(pending):
                        continue  # the rest of the line was already on its way
                    await self._put(batcher.flush(tails=idle))
                    opened_at = time.monotonic()
                    continue
                try:
                    chunk = pending.result()
                except StopAsyncIteration:
                    return
                pending = asyncio.ensure_future(anext(chunks))
                if batcher.open_batch_size == 0:
                    opened_at = time.monotonic()
                last_read = time.monotonic()
                await self._put(batcher.feed(chunk.stream, chunk.data))
        finally:
            pending.cancel()


async def _read_within(reading: asyncio.Task[None], queue: OutputQueue, grace_s: float) -> bool:
    """True if reading ends within `grace_s` of time it was free to read (the time it
    waited for room in the queue, behind a slow broker, does not count)."""
    budget = grace_s
    while budget > 0:
        began, blocked = time.monotonic(), queue.blocked_total()
        done, _ = await asyncio.wait({reading}, timeout=budget)
        if done:
            return True
        budget -= (time.monotonic() - began) - (queue.blocked_total() - blocked)
    return False


async def end_of_output(
    command_id: str, process: Process, pump: OutputPump, reading: asyncio.Task[None]
) -> None:
    """After the shell exited: wait for its output to end, cutting off a pipe held open
    by a background child (the group is killed) or by a process outside the group."""
    if not await _read_within(reading, pump.queue, EOF_GRACE_S):
        process.signal_group(signal.SIGKILL)
        if not await _read_within(reading, pump.queue, EOF_GRACE_S):
            # Held open by a process outside the group (it left with setsid):
            # stop reading, or the run would never end.
            log.warning("output still open after the kill", command_id=command_id)
            pump.cut = True
            process.close()
    await reading
