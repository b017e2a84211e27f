"""Reads a stream in order from any sequence, fast: an ephemeral pull consumer with
pipelined raw pulls (about ten times an ordered push consumer in nats-py, which stalls on flow
control). It survives a broker restart or a lost consumer by re-creating the consumer
from the last sequence it handed out, so a reader never skips or repeats an event.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from rdev_common import pull

log = structlog.get_logger()

LONG_POLL_S = 5.0


@dataclass(frozen=True)
class StoredMsg:
    seq: int
    subject: str
    data: bytes
    pending: int
    headers: dict[str, str] | None = None


class StreamReader:
    """One reader of `stream` filtered to `subjects`, from `start_seq` (1 = the beginning)."""

    def __init__(
        self,
        nc: Client,
        stream: str,
        subjects: list[str],
        start_seq: int = 1,
        follow: bool = True,
        batch: int = 256,
        max_bytes: int | None = None,
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.stream = stream
        self.subjects = subjects
        self.next_seq = max(1, start_seq)
        self.follow = follow
        self.batch = batch
        # Bytes per pull, if bounded: the server ends a pull (status 409) before the
        # message that would pass it. Must exceed the stream's largest message.
        self.max_bytes = max_bytes
        # Messages still owed by each outstanding pull, oldest first: the server serves
        # pulls in order, so a message or an end-of-pull status belongs to the head.
        self.owed: collections.deque[int] = collections.deque()
        self.consumer: str | None = None
        self.queue: asyncio.Queue[Msg] = asyncio.Queue()
        self.inbox = nc.new_inbox()

    async def _create(self) -> None:
        while True:
            try:
                info = await self.js.add_consumer(
                    self.stream,
                    ConsumerConfig(
                        filter_subjects=self.subjects if len(self.subjects) > 1 else None,
                        filter_subject=self.subjects[0] if len(self.subjects) == 1 else None,
                        ack_policy=AckPolicy.NONE,
                        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                        opt_start_seq=self.next_seq,
                        inactive_threshold=30.0,
                        mem_storage=True,
                        num_replicas=1,
                        max_waiting=16,
                    ),
                )
                self.consumer = info.name
                return
            except Exception as exc:  # broker away: keep trying until it is back
                log.debug("reader consumer not created yet", error=repr(exc))
                await asyncio.sleep(0.25)

    async def _pull(self) -> None:
        self.owed.append(self.batch)
        request = pull.pull_request(
            self.batch,
            max_bytes=self.max_bytes,
            expires_s=LONG_POLL_S if self.follow else None,
            no_wait=not self.follow,
        )
        with contextlib.suppress(Exception):
            await self.nc.publish(
                pull.next_subject(self.stream, self.consumer or ""), request, reply=self.inbox
            )

    async def __aiter__(self) -> AsyncIterator[StoredMsg]:
        async def deliver(msg: Msg) -> None:
            self.queue.put_nowait(msg)

        sub = await self.nc.subscribe(self.inbox, cb=deliver)
        try:
            async for item in self._read():
                yield item
        finally:
            await sub.unsubscribe()
            if self.consumer:
                with contextlib.suppress(Exception):
                    await self.js.delete_consumer(self.stream, self.consumer)

    async def _restart(self) -> None:
        self.owed.clear()
        await self._create()
        await self._pull()

    def _grow_if_stuck(self) -> None:
        """A pull ended by max_bytes before its first message: that message is larger
        than a pull may take, and every pull would stop before it. Take it next time."""
        if self.max_bytes and self.owed and self.owed[0] == self.batch:
            self.max_bytes *= 2
            log.warning("a message exceeds a pull's byte bound; bound raised", to=self.max_bytes)

    def _settle(self, ended: bool) -> None:
        """Account for one message (or, with `ended`, the end) of the oldest pull."""
        if not self.owed:
            return
        self.owed[0] -= 1
        if ended or self.owed[0] <= 0:
            self.owed.popleft()

    async def _next_msg(self) -> Msg:
        """The next reply; waiting (a timer and a task) only when none is queued yet."""
        try:
            return self.queue.get_nowait()
        except asyncio.QueueEmpty:
            return await asyncio.wait_for(self.queue.get(), LONG_POLL_S + 2.0)

    async def _read(self) -> AsyncIterator[StoredMsg]:
        await self._restart()
        while True:
            try:
                msg = await self._next_msg()
            except TimeoutError:
                # No answer at all: the broker restarted or the consumer is gone.
                await self._restart()
                continue
            status = msg.headers.get("Status") if msg.headers else None
            if status == "100":
                continue  # idle heartbeat
            if status is not None:
                if status == "404" and not self.follow:
                    return
                if status == "409" and "Deleted" in str(msg.headers):
                    await self._restart()
                    continue
                if status == "409" and "Batch Completed" in str(msg.headers):
                    continue  # sent with max_bytes after a full batch, already settled
                if status == "409" and "MaxBytes" in str(msg.headers):
                    self._grow_if_stuck()
                self._settle(ended=True)
            else:
                self._settle(ended=False)
                where = pull.position(msg.reply or "")
                seq, pending = where.stream_seq, where.pending
                if seq >= self.next_seq:  # else: handed out before a consumer re-creation
                    self.next_seq = seq + 1
                    yield StoredMsg(seq, msg.subject, msg.data, pending, msg.headers)
                    if pending == 0 and not self.follow:
                        return
            if sum(self.owed) < self.batch // 2:
                await self._pull()
