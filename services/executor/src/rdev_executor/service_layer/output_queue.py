"""A run's output between its pipes and the broker: read and stored at their own pace.

Batches go out one at a time, in order. While the broker stores them the queue is
held in memory up to a bound, and a full queue makes the reader wait (the pipe
fills and the command waits, as it always did). When the broker stops storing
(one batch in flight for `stall_s`: the broker is away or failing), the reader no
longer waits: what it reads goes to the executor's spool on disk, so the command's
pipes keep draining and its output outlives an outage in order. Only when the spool
is full too, with the broker still away, is output dropped, and then all of the
rest, so what is stored is always a whole prefix; the run reports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from rdev_executor.domain.output import Batch
from rdev_executor.service_layer.ports import RunSpool, Spool

log = structlog.get_logger()

# A publish this long in flight means the broker is not storing: spill, don't wait.
STALL_S = 1.0


def batch_bytes(batch: Batch) -> int:
    """About the bytes a batch's lines took in the output (UTF-8, with line ends)."""
    return len(batch.text.encode()) + 1


@dataclass
class OutputQueue:
    publish: Callable[[Batch], Awaitable[None]]
    command_id: str
    memory_bytes: int
    spool: Spool | None = None
    stall_s: float = STALL_S
    stored_lines: int = 0
    dropped_bytes: int = 0
    dropping: bool = False
    blocked_s: float = 0.0  # time the reader spent waiting for room
    _memory: deque[Batch] = field(default_factory=deque)
    _memory_size: int = 0
    _spooled: int = 0
    _run_spool: RunSpool | None = None
    _closed: bool = False
    _failed: bool = False
    _in_flight_since: float | None = None
    _blocked_since: float | None = None
    _room: asyncio.Event = field(default_factory=asyncio.Event)
    _work: asyncio.Event = field(default_factory=asyncio.Event)

    def blocked_total(self) -> float:
        """Time the reader has waited for room so far, a wait in progress included."""
        since = self._blocked_since
        return self.blocked_s + (time.monotonic() - since if since is not None else 0.0)

    @property
    def stalled(self) -> bool:
        since = self._in_flight_since
        return since is not None and time.monotonic() - since >= self.stall_s

    async def put(self, batch: Batch) -> bool:
        """Queue `batch` after every earlier one; False if it had to be dropped
        (then every later one is dropped too)."""
        if self.dropping:
            self.dropped_bytes += batch_bytes(batch)
            return False
        try:
            while not self._failed and not self._place(batch):
                if self._blocked_since is None:
                    self._blocked_since = time.monotonic()
                # Until the publish in flight counts as stalled, or room is made.
                since = self._in_flight_since
                timeout = self.stall_s if since is None else since + self.stall_s - time.monotonic()
                self._room.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._room.wait(), max(timeout, 0.01))
        finally:
            if self._blocked_since is not None:
                self.blocked_s += time.monotonic() - self._blocked_since
                self._blocked_since = None
        self._work.set()
        return not self.dropping

    def _place(self, batch: Batch) -> bool:
        """Put `batch` where it fits now; False to wait for room. Memory holds the head
        of the queue, the spool its tail: while anything is spooled, so is the rest."""
        if not self._spooled and (
            not self._memory or self._memory_size + batch.size <= self.memory_bytes
        ):
            self._memory.append(batch)
            self._memory_size += batch.size
            return True
        stalled = self.stalled
        if not (self._spooled or stalled):
            return False  # the broker is storing: wait for it, as the command would
        if self._spool_append(batch):
            self._spooled += 1
            return True
        if not stalled:
            return False  # the spool is full but draining
        self._drop(batch)
        return True

    def _spool_append(self, batch: Batch) -> bool:
        if self.spool is None:
            return False
        try:
            if self._run_spool is None:
                self._run_spool = self.spool.open(self.command_id)
                log.warning("broker not storing output, spooling it", command_id=self.command_id)
            return self._run_spool.append(batch)
        except OSError as exc:
            log.error("output spool unusable", command_id=self.command_id, error=str(exc))
            self.spool = None
            return False

    def _drop(self, batch: Batch) -> None:
        self.dropping = True
        self.dropped_bytes += batch_bytes(batch)
        log.error(
            "output dropped: the broker is away and the spool is full",
            command_id=self.command_id,
            first_line=batch.first_line,
        )

    def close(self) -> None:
        """No more batches: the publisher ends once it has stored every one."""
        self._closed = True
        self._work.set()

    def _next(self) -> Batch | None:
        if self._memory:
            return self._memory[0]
        if self._spooled and self._run_spool is not None:
            return self._run_spool.peek()
        return None

    async def run(self) -> None:
        """Store the queued batches in order until the queue is closed and empty."""
        try:
            await self._store_all()
        except BaseException:
            # The run fails with this error; the reader must not wait for room meanwhile.
            self._failed = True
            self._room.set()
            raise

    async def _store_all(self) -> None:
        while True:
            batch = self._next()
            if batch is None:
                if self._closed:
                    return
                self._work.clear()
                await self._work.wait()
                continue
            self._in_flight_since = time.monotonic()
            try:
                await self.publish(batch)
            finally:
                self._in_flight_since = None
            self.stored_lines += batch.count
            if self._memory:
                self._memory.popleft()
                self._memory_size -= batch.size
            else:
                assert self._run_spool is not None
                self._run_spool.pop()
                self._spooled -= 1
            self._room.set()

    def discard(self) -> None:
        """Release the run's spool files (after the run, or when it is abandoned)."""
        if self._run_spool is not None:
            self._run_spool.close()
            self._run_spool = None
