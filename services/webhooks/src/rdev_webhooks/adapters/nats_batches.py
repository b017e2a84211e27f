"""Batches of a durable pull consumer, from one standing pull request.

nats-py's `fetch()` sends a request per call and creates a task for every message
it waits for; at a few events per batch that costs more than handling them. Here
one pull request stays open: the server pushes each message as it is stored, the
subscription's callback buffers it, and `next_batch` hands out what has arrived
after letting a burst gather for `linger_s`.

A request is renewed once it is used up, answered with a status (408 when it
expired, 409 when the server dropped it), past its expiry, or after a reconnect
(the server forgets the requests of a lost connection). It never asks for more
than `size` minus what is buffered, so a slow handler bounds the buffer. Whatever
is buffered but never handled is redelivered by JetStream after the ack wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import Header, StatusCode

from rdev_common import pull

log = structlog.get_logger()

EXPIRES_S = 5.0  # lifetime of a pull request: an idle consumer renews it this often
EXPIRY_MARGIN_S = 0.5  # the server's 408 normally comes first; this is for a lost one
REFUSED_RETRY_S = 0.5  # after a refusal (e.g. the consumer is gone), ask again this late


class PullBatches:
    def __init__(
        self,
        nc: NATS,
        stream: str,
        durable: str,
        size: int,
        linger_s: float,
        expires_s: float = EXPIRES_S,
    ) -> None:
        self.nc = nc
        self.durable = durable
        self.size = size
        self.linger_s = linger_s
        self.expires_s = expires_s
        self._next = pull.next_subject(stream, durable)
        self._inbox = ""
        self._sub: Subscription | None = None
        self._buffer: list[Msg] = []
        self._arrived = asyncio.Event()
        self._credit = 0  # messages the open request may still deliver
        self._open_until = 0.0  # monotonic time by which the open request is surely over
        self._reconnects = 0  # the connection's reconnect count when it was sent
        self._retry_at = 0.0

    async def start(self) -> None:
        self._inbox = self.nc.new_inbox()
        self._sub = await self.nc.subscribe(self._inbox, cb=self._on_msg)

    async def close(self) -> list[Msg]:
        """Stop receiving; returns the buffered messages nobody will handle."""
        if self._sub is not None:
            with contextlib.suppress(Exception):  # a dead connection has nothing to release
                await self._sub.unsubscribe()
            self._sub = None
        left, self._buffer = self._buffer, []
        return left

    async def next_batch(self, wait_s: float) -> list[Msg]:
        """Up to `size` messages: waits at most `wait_s` for a first one, then lingers."""
        deadline = time.monotonic() + wait_s
        while True:
            self._arrived.clear()
            await self._renew_if_over()
            if self._buffer:
                break
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                return []
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), timeout)
        if len(self._buffer) < self.size and self.linger_s > 0:
            await asyncio.sleep(self.linger_s)
        batch, self._buffer = self._buffer[: self.size], self._buffer[self.size :]
        return batch

    async def _on_msg(self, msg: Msg) -> None:
        status = msg.headers.get(Header.STATUS) if msg.headers else None
        if status is None:
            self._credit -= 1
            self._buffer.append(msg)
        elif status == StatusCode.CONTROL_MESSAGE:
            return  # a heartbeat: the request is still open
        else:  # the request is over: expired (408), or dropped by the server
            self._credit = 0
            if status != StatusCode.REQUEST_TIMEOUT:
                description = msg.headers.get(Header.DESCRIPTION) if msg.headers else None
                log.warning(
                    "pull request refused", consumer=self.durable, status=status, why=description
                )
                self._retry_at = time.monotonic() + REFUSED_RETRY_S
        self._arrived.set()

    def _open(self) -> bool:
        return (
            self._credit > 0
            and time.monotonic() < self._open_until
            and self.nc.stats["reconnects"] == self._reconnects
        )

    async def _renew_if_over(self) -> None:
        want = self.size - len(self._buffer)
        if want <= 0 or self._open() or time.monotonic() < self._retry_at:
            return
        request = pull.pull_request(want, expires_s=self.expires_s)
        self._credit = want
        self._open_until = time.monotonic() + self.expires_s + EXPIRY_MARGIN_S
        self._reconnects = self.nc.stats["reconnects"]
        try:  # counted as open first: messages may arrive while this awaits
            await self.nc.publish(self._next, request, reply=self._inbox)
        except Exception:
            self._credit = 0
            raise
