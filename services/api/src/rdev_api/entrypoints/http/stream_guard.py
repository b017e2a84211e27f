"""Paces an open event stream: heartbeats while it is open, and an end once its key
may no longer read it.

Every long-lived response passes through here: event streams and followed logs
(`/commands/{id}/output?follow=true`). A stream is authorised when it opens; a
revoked, expired or IP-restricted key, or a rotated secret past its grace period,
must not keep reading. Every `check_s` the principal is checked again against the
identity cache (a dictionary look-up; admin events keep the cache current on every
replica), and the stream ends (an event stream with an `error` event).

Heartbeats are events of the stream itself rather than a task beside it, and a
run's stream ends at the chunk its body marks `Final` (the one with `complete`),
before the body has cleaned up: no heartbeat can follow `complete`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import structlog

from rdev_api.domain.model import Principal
from rdev_api.entrypoints import sse
from rdev_api.service_layer import auth
from rdev_api.service_layer.ports import Services

log = structlog.get_logger()


REVOKED = {"message": "the API key is no longer valid", "code": "unauthenticated"}


def sse_farewell() -> bytes:
    return sse.event("error", REVOKED)


async def guarded(
    body: AsyncIterator[bytes],
    services: Services,
    principal: Principal,
    check_s: float,
    heartbeat_s: float,
    heartbeat: Callable[[], bytes] | None = sse.heartbeat,
    farewell: Callable[[], bytes] | None = sse_farewell,
) -> AsyncIterator[bytes]:
    """`body` until it ends or the key may no longer read it (then `farewell`), with a
    `heartbeat` every `heartbeat_s` (None: no heartbeats, as in a followed text log)."""
    if heartbeat is None:
        heartbeat_s = float("inf")
    source = aiter(body)
    pending: asyncio.Future[bytes] | None = None
    loop = asyncio.get_running_loop()
    next_check = loop.time() + check_s
    next_beat = loop.time() + heartbeat_s
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(source))
            wait_s = max(0.0, min(next_check, next_beat) - loop.time())
            done, _ = await asyncio.wait({pending}, timeout=wait_s)
            if done:
                try:
                    chunk = pending.result()
                except StopAsyncIteration:
                    return
                pending = None
                yield chunk
                if isinstance(chunk, sse.Final):
                    return
            if heartbeat is not None and loop.time() >= next_beat:
                next_beat = loop.time() + heartbeat_s
                yield heartbeat()
            if loop.time() >= next_check:
                next_check = loop.time() + check_s
                if not await auth.still_valid(services.uow(), principal, services.clock()):
                    log.info("stream closed: key no longer valid", key_id=principal.key.id)
                    if farewell is not None:
                        yield farewell()
                    return
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        with contextlib.suppress(Exception):
            await source.aclose()  # type: ignore[attr-defined]
