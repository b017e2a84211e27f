"""Shared pieces of background services: durable consumption and bounded shutdown."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import structlog
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from opentelemetry.trace import Status, StatusCode

from rdev_common.metrics import observe_consumed
from rdev_common.streams import DurableConsumer
from rdev_common.telemetry import consume_span

log = structlog.get_logger()

Handler = Callable[[Msg], Awaitable[None]]


def run_async(main: Coroutine[Any, Any, None], *, fast_loop: bool = True) -> None:
    """Run a service's main coroutine, on uvloop where it is installed and `fast_loop`.

    uvloop cuts the loop's own cost per socket read by about half. It starts
    subprocesses with fork(), though, which takes milliseconds more the larger the
    parent is, where the standard loop's vfork() takes 0.6 ms: a service that spawns
    commands keeps the standard loop.
    """
    if fast_loop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            uvloop.run(main)
            return
    asyncio.run(main)


async def consume(
    js: JetStreamContext,
    consumer: DurableConsumer,
    handler: Handler,
    batch: int = 100,
    stop: asyncio.Event | None = None,
) -> None:
    """Hand every message of a durable pull consumer to `handler`, which acks or naks it.

    A handler that raises leaves the message un-acked: it is redelivered after the
    consumer's ack wait, so nothing is dropped silently. Each message is handled in
    a consumer span, a child of the span that published it. Once `stop` is set, no
    new message is taken and the rest of a fetched batch is handed back at once.
    """
    durable = consumer.config.durable_name or ""
    sub = await js.pull_subscribe_bind(durable, consumer.stream)
    stop = stop or asyncio.Event()
    while not stop.is_set():
        try:
            msgs = await sub.fetch(batch, timeout=1.0)
        except (NatsTimeoutError, TimeoutError):
            continue
        except Exception as exc:  # broker away: keep trying
            log.warning("fetch failed", consumer=durable, error=repr(exc))
            await asyncio.sleep(0.5)
            continue
        for msg in msgs:
            if stop.is_set():
                with contextlib.suppress(Exception):
                    await msg.nak()
                continue
            await _handle_one(durable, handler, msg)


async def _handle_one(durable: str, handler: Handler, msg: Msg) -> None:
    with consume_span(msg) as span:
        try:
            await handler(msg)
        except Exception as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            observe_consumed(durable, msg, "error")
            log.exception("handler failed; message will be redelivered", consumer=durable)
            return
    observe_consumed(durable, msg, "ok")


async def cancel_all(tasks: list[asyncio.Task[Any]], timeout_s: float = 5.0) -> None:
    """Cancel `tasks` and wait for them at most `timeout_s`: shutdown never hangs on one."""
    for task in tasks:
        task.cancel()
    if tasks:
        _, stuck = await asyncio.wait(tasks, timeout=timeout_s)
        for task in stuck:
            log.warning("task did not stop in time", task=task.get_name())


async def bounded(step: Awaitable[Any], what: str, timeout_s: float = 5.0) -> None:
    """Await a shutdown step for at most `timeout_s`, logging instead of hanging."""
    try:
        await asyncio.wait_for(step, timeout_s)
    except Exception as exc:
        log.warning("shutdown step did not finish", step=what, error=repr(exc))
