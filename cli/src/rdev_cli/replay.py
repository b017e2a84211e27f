"""Fast replay of a stream's history: an ephemeral pull consumer read with raw, pipelined pulls.

nats-py's `fetch()` costs a round trip and a Python object per message; here two
large pull requests are kept in flight on one inbox, and each message's stream
sequence and pending count are read straight from its reply subject. Messages are
handed over as bytes, so the caller can write them without decoding.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from rdev_common import pull
from rdev_common.events import structured

BATCH = 4096
IN_FLIGHT = 2
PULL_EXPIRES_S = 5.0

Sink = Callable[[int, str, bytes], None]


@dataclass(frozen=True)
class ReplayRange:
    stream: str
    subject: str | None = None
    from_seq: int | None = None
    since: datetime | None = None
    to_seq: int | None = None


def consumer_config(span: ReplayRange) -> ConsumerConfig:
    config = ConsumerConfig(
        ack_policy=AckPolicy.NONE,
        deliver_policy=DeliverPolicy.ALL,
        filter_subject=span.subject,
        inactive_threshold=30.0,
        mem_storage=True,
        num_replicas=1,
    )
    if span.from_seq:
        config.deliver_policy, config.opt_start_seq = DeliverPolicy.BY_START_SEQUENCE, span.from_seq
    elif span.since:
        config.deliver_policy, config.opt_start_time = DeliverPolicy.BY_START_TIME, span.since
    return config


class Replay:
    """Reads `span` once, from its start to `to_seq` or to the stream's end at start time."""

    def __init__(self, nc: Client, span: ReplayRange, sink: Sink) -> None:
        self.nc = nc
        self.span = span
        self.sink = sink
        self.count = 0
        self.total = 0
        self._done = asyncio.Event()
        self._received = 0
        self._last = 0
        self._api = self._inbox = ""
        # The server starts a by-time consumer at the stream's beginning when the time is
        # past its last message, so times are checked here too.
        self._since_ns = int(span.since.timestamp() * 1e9) if span.since else 0

    async def run(self) -> int:
        js = self.nc.jetstream()
        info = await js.stream_info(self.span.stream)
        self._last = min(self.span.to_seq or 2**63, int(info.state.last_seq or 0))
        consumer = await js.add_consumer(self.span.stream, consumer_config(self.span))
        self.total = int(consumer.num_pending or 0)
        self._api = pull.next_subject(self.span.stream, consumer.name or "")
        self._inbox = self.nc.new_inbox()
        sub = await self.nc.subscribe(self._inbox, cb=self._on_message, pending_msgs_limit=-1)
        try:
            if self.total and self._last:
                for _ in range(IN_FLIGHT):
                    await self._pull()
                await self._done.wait()
        finally:
            await sub.unsubscribe()
            await js.delete_consumer(self.span.stream, consumer.name or "")
        return self.count

    async def _pull(self) -> None:
        request = pull.pull_request(BATCH, expires_s=PULL_EXPIRES_S)
        await self.nc.publish(self._api, request, reply=self._inbox)

    async def _on_message(self, msg: Msg) -> None:
        if self._done.is_set():
            return
        if not msg.reply:  # a status: request expired or the server had nothing more
            await self._pull()
            return
        where = pull.position(msg.reply)
        seq, pending, stored_ns = where.stream_seq, where.pending, where.stored_ns
        if seq > self._last:
            self._done.set()
            return
        self._received += 1
        if stored_ns >= self._since_ns:
            self.sink(seq, msg.subject, structured(msg.data, msg.headers))
            self.count += 1
        if seq >= self._last or pending == 0:
            self._done.set()
        elif self._received % BATCH == 0:
            await self._pull()
