"""Composition root of the audit service: broker, database, one projection loop per stream."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from datetime import UTC, datetime

import structlog
from sqlalchemy import text

from rdev_audit.adapters.nats_feed import NatsPositionedFeed
from rdev_audit.adapters.sqlalchemy_projection import SqlAlchemyProjectionUnitOfWork
from rdev_audit.entrypoints.worker import ProjectionLoop
from rdev_audit.service_layer.projector import Source
from rdev_audit.settings import AuditSettings
from rdev_common import streams
from rdev_common.broker import connect
from rdev_common.db.engine import create_engine
from rdev_common.health import Check, health_server
from rdev_common.service import settle_heap, unsettle_heap

log = structlog.get_logger()

SERVICE = "audit"
SOURCES = (
    (Source(streams.LIFECYCLE, "lifecycle"), streams.lifecycle_consumer(SERVICE)),
    (Source(streams.ADMIN, "admin"), streams.admin_consumer(SERVICE)),
    (Source(streams.WEBHOOKS, "webhooks"), streams.webhook_events_consumer(SERVICE)),
)


def utcnow() -> datetime:
    return datetime.now(UTC)


async def run(settings: AuditSettings) -> None:
    """Project every source stream until SIGTERM/SIGINT."""
    nc = await connect(settings.require_nats_url(), "rdev-audit", **settings.nats_credentials())
    js = nc.jetstream()
    await streams.ensure_streams(js, settings)
    engine = create_engine(settings.resolved_database_url())
    loops = [
        ProjectionLoop(
            source,
            NatsPositionedFeed(
                js, consumer, batch=settings.batch_size, linger_s=settings.batch_linger_ms / 1000
            ),
            lambda: SqlAlchemyProjectionUnitOfWork(engine),
            utcnow,
        )
        for source, consumer in SOURCES
    ]

    async def broker_answers() -> bool:
        await js.account_info()
        return nc.is_connected

    async def database_answers() -> bool:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True

    checks: dict[str, Check] = {"nats": broker_answers, "database": database_answers}
    health = health_server(checks, settings.health_host, settings.health_port)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    tasks = [asyncio.create_task(health.serve())]
    tasks += [asyncio.create_task(loop.run()) for loop in loops]
    log.info("service started", name=SERVICE)
    settle_heap()
    await stop.wait()
    unsettle_heap()
    health.should_exit = True
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    for loop in loops:
        await loop.feed.close()
    # Batches are acknowledged only after their commit, so closing loses nothing.
    await nc.close()
    await engine.dispose()
