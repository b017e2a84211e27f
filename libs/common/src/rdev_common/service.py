"""The life of a background service: connect, consume durably, serve health, stop on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable

import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext

from rdev_common.broker import connect
from rdev_common.health import Check, health_server
from rdev_common.settings import HealthSettings
from rdev_common.streams import DurableConsumer, ensure_consumer, ensure_streams

log = structlog.get_logger()

Handler = Callable[[Msg], Awaitable[None]]


async def consume(
    js: JetStreamContext, consumer: DurableConsumer, handler: Handler, batch: int = 100
) -> None:
    """Hand every message of a durable pull consumer to `handler`, which acks or naks it.

    A handler that raises leaves the message un-acked: it is redelivered after the
    consumer's ack wait, so nothing is dropped silently.
    """
    sub = await js.pull_subscribe_bind(consumer.config.durable_name or "", consumer.stream)
    while True:
        try:
            msgs = await sub.fetch(batch, timeout=1.0)
        except (NatsTimeoutError, TimeoutError):
            continue
        except Exception as exc:  # broker away: keep trying
            log.warning("fetch failed", consumer=consumer.config.durable_name, error=repr(exc))
            await asyncio.sleep(0.5)
            continue
        for msg in msgs:
            try:
                await handler(msg)
            except Exception:
                log.exception(
                    "handler failed; message will be redelivered",
                    consumer=consumer.config.durable_name,
                )


async def run_service(
    name: str,
    settings: HealthSettings,
    consumers: list[tuple[DurableConsumer, Handler]],
) -> None:
    """Run a consuming service until SIGTERM/SIGINT."""
    nc: Client = await connect(settings.require_nats_url(), f"rdev-{name}")
    js = nc.jetstream()
    await ensure_streams(js, settings)
    for consumer, _ in consumers:
        await ensure_consumer(js, consumer)

    async def broker_answers() -> bool:
        await js.account_info()
        return nc.is_connected

    checks: dict[str, Check] = {"nats": broker_answers}
    health = health_server(checks, settings.health_host, settings.health_port)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    tasks = [asyncio.create_task(health.serve())]
    tasks += [asyncio.create_task(consume(js, c, h)) for c, h in consumers]
    log.info("service started", name=name)
    await stop.wait()
    health.should_exit = True
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await nc.drain()
