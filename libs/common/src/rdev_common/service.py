"""Shared pieces of background services: their event loop, their run until a signal
(health server, signal handling, settled heap), and bounded shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import AsyncIterator, Awaitable, Coroutine, Mapping
from typing import Any

import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from rdev_common.health import Check, health_server

log = structlog.get_logger()


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


def settle_heap() -> None:
    """Once a service has started: keep what start-up allocated out of garbage collection.

    Everything imported and built at start-up (modules, the app, clients, pydantic
    schemas) lives as long as the process, yet every full collection walked all of
    it again: a tenth of the API's CPU under load. Frozen, it is never scanned;
    only objects made while serving are.
    """
    gc.collect()
    gc.freeze()


def unsettle_heap() -> None:
    """At shutdown: make the frozen heap collectable again (a process that starts the
    service again, as tests do, would otherwise keep every earlier one for ever)."""
    gc.unfreeze()


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


def broker_check(nc: Client, js: JetStreamContext) -> Check:
    """Ready while the broker answers a JetStream request and the connection is up."""

    async def broker_answers() -> bool:
        await js.account_info()
        return nc.is_connected

    return broker_answers


def database_check(engine: AsyncEngine) -> Check:
    """Ready while the database answers `SELECT 1`."""

    async def database_answers() -> bool:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True

    return database_answers


@contextlib.asynccontextmanager
async def serving(
    name: str, checks: Mapping[str, Check], host: str, port: int, **started: Any
) -> AsyncIterator[asyncio.Event]:
    """A background service's run: its health server (/healthz, /readyz with `checks`,
    /metrics) serves, SIGTERM and SIGINT set the event it yields, and the heap
    start-up built is settled. On leaving, the heap is unsettled and the health server
    stopped; the service's own shutdown steps follow the block."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    health = health_server(checks, host, port)
    health_task = asyncio.create_task(health.serve(), name="health")
    log.info("service started", name=name, **started)
    settle_heap()
    try:
        yield stop
    finally:
        unsettle_heap()
        health.should_exit = True
        await cancel_all([health_task])
