"""Composition root of the audit service: broker, database, one projection loop per stream,
run by the one instance that holds the writer lock."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

import structlog
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncEngine

from rdev_audit.adapters.nats_feed import NatsPositionedFeed
from rdev_audit.adapters.sqlalchemy_projection import SqlAlchemyProjectionUnitOfWork
from rdev_audit.adapters.writer_lock import WriterLock, acquire, writer_lock
from rdev_audit.entrypoints.worker import ProjectionLoop
from rdev_audit.service_layer.projector import Source
from rdev_audit.settings import AuditSettings
from rdev_common import streams
from rdev_common.broker import connect
from rdev_common.db.engine import create_engine
from rdev_common.service import broker_check, database_check, serving

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
    """Project every source stream until SIGTERM/SIGINT, while this instance holds the
    writer lock; a second instance waits as a standby (adapters/writer_lock.py)."""
    nc = await connect(settings.require_nats_url(), "rdev-audit", **settings.nats_credentials())
    js = nc.jetstream()
    await streams.ensure_streams(js, settings)
    database_url = settings.resolved_database_url()
    engine = create_engine(database_url)
    lock = writer_lock(database_url, engine)

    checks = {"nats": broker_check(nc, js), "database": database_check(engine)}
    async with serving(SERVICE, checks, settings.health_host, settings.health_port) as stop:
        while await acquire(lock, stop, settings.standby_poll_s):
            log.info("audit writer: projecting", streams=[s.stream for s, _ in SOURCES])
            lost = await _project_while_held(settings, js, engine, lock, stop)
            await lock.release()
            if not lost:
                break
            # Give a standby the first chance at the lock: it has been polling all along.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 2 * settings.standby_poll_s)
    await nc.close()
    await engine.dispose()


async def _project_while_held(
    settings: AuditSettings,
    js: JetStreamContext,
    engine: AsyncEngine,
    lock: WriterLock,
    stop: asyncio.Event,
) -> bool:
    """Run the projection loops until `stop` (False) or until the lock is lost (True)."""
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
    tasks = [asyncio.create_task(loop.run()) for loop in loops]
    stopping = asyncio.create_task(stop.wait())
    lost = False
    while not stopping.done():
        await asyncio.wait([stopping], timeout=settings.writer_check_s)
        if not stopping.done() and not await lock.still_held():
            log.warning("audit writer lock lost: projection paused until it is held again")
            lost = True
            break
    stopping.cancel()
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    for loop in loops:
        await loop.feed.close()
    # Batches are acknowledged only after their commit, so closing loses nothing.
    return lost
