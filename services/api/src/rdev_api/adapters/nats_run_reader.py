"""Reads run events from RDEV_RUNS in stream order, from any sequence, live."""

from __future__ import annotations

from collections.abc import AsyncIterator

from nats.aio.client import Client
from nats.js.errors import NotFoundError

from rdev_api.adapters.stream_reader import StreamReader
from rdev_api.service_layer.ports import StoredEvent
from rdev_common import streams

# Messages and bytes requested per pull of an SSE connection: with at most two pulls
# outstanding, a stalled client makes the api hold at most about twice PULL_BYTES. A pull
# must take the largest event RDEV_RUNS stores (an output batch is split below it).
SSE_BATCH = 32
PULL_BYTES = streams.RUNS_MAX_MSG_SIZE + 64 * 1024


class NatsRunReader:
    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self.js = nc.jetstream()

    async def events(
        self, filter_subject: str, start_seq: int, follow: bool = True
    ) -> AsyncIterator[StoredEvent]:
        """Every stored event matching `filter_subject` from `start_seq` on, then live ones."""
        reader = StreamReader(
            self.nc,
            streams.RUNS,
            [filter_subject],
            start_seq,
            follow=follow,
            batch=SSE_BATCH if follow else 256,
            max_bytes=PULL_BYTES,
        )
        async for msg in reader:
            yield StoredEvent(msg.seq, msg.subject, msg.data, msg.headers)

    async def last_seq(self, subject: str) -> int | None:
        """Stream sequence of the last event on `subject`, or None."""
        try:
            msg = await self.js.get_last_msg(streams.RUNS, subject, direct=True)
        except NotFoundError:
            return None
        return int(msg.seq or 0)
