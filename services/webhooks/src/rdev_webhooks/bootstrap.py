"""Composition root of the webhooks service. No I/O at import."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import structlog
from nats.js.api import DeliverPolicy

from rdev_common.broker import connect
from rdev_common.circuit_breaker import BreakerPolicy
from rdev_common.db.engine import create_engine, session_factory, sqlite_file
from rdev_common.db.tables import WebhookOutboxRow
from rdev_common.metrics import circuit_state_recorder, poll_consumers
from rdev_common.outbox import OutboxRelay, nats_publisher
from rdev_common.service import bounded, broker_check, cancel_all, database_check, serving
from rdev_common.streams import (
    WEBHOOKS,
    admin_consumer,
    ensure_consumer,
    ensure_streams,
    lifecycle_consumer,
)
from rdev_common.telemetry import configure_telemetry, shutdown_telemetry
from rdev_webhooks.adapters.httpx_sender import HttpxWebhookSender
from rdev_webhooks.adapters.nats_batches import PullBatches
from rdev_webhooks.adapters.sqlalchemy_store import SqlAlchemyDeliveryStore
from rdev_webhooks.adapters.sqlite_threads import SqliteThreads
from rdev_webhooks.domain.schedule import RetrySchedule
from rdev_webhooks.entrypoints.lifecycle import LifecycleIngest, consume_lifecycle
from rdev_webhooks.service_layer.attempt import AttemptContext, Policy
from rdev_webhooks.service_layer.dispatcher import Dispatcher
from rdev_webhooks.settings import WebhooksSettings

log = structlog.get_logger()

IDLE_WAIT_S = 1.0  # the lifecycle consumer notices a stop at least this often


def utcnow() -> datetime:
    return datetime.now(UTC)


async def run(settings: WebhooksSettings) -> None:
    """Consume run lifecycle and admin events and deliver them until SIGTERM/SIGINT."""
    configure_telemetry("webhooks")
    nc = await connect(settings.require_nats_url(), "rdev-webhooks", **settings.nats_credentials())
    js = nc.jetstream()
    await ensure_streams(js, settings)
    # Run lifecycle events and admin changes (project.*, webhook.*): each its own
    # durable consumer, both feeding the same batched ingest. Admin changes count from
    # the consumer's creation: an installation that gains it does not send endpoints
    # the admin history that came before.
    consumers = [
        lifecycle_consumer("webhooks"),
        admin_consumer("webhooks", deliver_policy=DeliverPolicy.NEW),
    ]
    for consumer in consumers:
        await ensure_consumer(js, consumer)
    engine = create_engine(settings.resolved_database_url())
    sqlite = engine.dialect.name == "sqlite"
    path = sqlite_file(engine.url)
    sqlite_threads = SqliteThreads(path) if path else None
    sessions = session_factory(engine)
    store = SqlAlchemyDeliveryStore(sessions, sqlite, sqlite_threads)
    sender = HttpxWebhookSender(
        settings.webhooks_timeout_s, settings.webhooks_allow_private_targets
    )
    schedule = RetrySchedule(settings.retry_delays())
    policy = Policy(schedule, settings.webhooks_timeout_s, settings.webhooks_disable_after_s)
    relay = OutboxRelay(
        sessions,
        # Short: a publish waiting on an absent broker holds the store's write turn.
        nats_publisher(js, WEBHOOKS, timeout_s=1.0),
        table=WebhookOutboxRow,
        writes=store.writes,
        linger_s=0.05,
        # Every attempt writes a row, and the attempts table and the stream hold the
        # same: an hour is enough to look into a relay that fell behind.
        keep_s=3600.0,
    )
    ctx = AttemptContext(store, sender, utcnow, policy, outbox_written=relay.wake)
    breaker = BreakerPolicy(
        failure_threshold=settings.webhooks_breaker_failures,
        cooldown_s=settings.webhooks_breaker_cooldown_s,
    )
    dispatcher = Dispatcher(
        ctx,
        breaker,
        settings.webhooks_endpoint_concurrency,
        settings.webhooks_poll_interval_s,
        breaker_observer=circuit_state_recorder,
    )

    feeds = [
        (
            PullBatches(
                nc,
                consumer.stream,
                consumer.durable,
                settings.webhooks_ingest_batch,
                settings.webhooks_ingest_linger_s,
            ),
            LifecycleIngest(store, schedule, dispatcher.wake.set, consumer.durable),
        )
        for consumer in consumers
    ]
    checks = {"nats": broker_check(nc, js), "database": database_check(engine)}
    host, port, delays = settings.health_host, settings.health_port, list(schedule.delays)
    async with serving("webhooks", checks, host, port, schedule=delays) as stop:
        tasks = [
            asyncio.create_task(poll_consumers(js, [(c.stream, c.durable) for c in consumers])),
            *(asyncio.create_task(consume_lifecycle(f, i, IDLE_WAIT_S, stop)) for f, i in feeds),
            asyncio.create_task(dispatcher.run()),
            asyncio.create_task(relay.run()),
        ]
        await stop.wait()
        await cancel_all(tasks)
    await bounded(sender.aclose(), "close http client")
    await bounded(nc.drain(), "drain nats")
    if sqlite_threads is not None:
        await bounded(sqlite_threads.aclose(), "close sqlite threads")
    await bounded(engine.dispose(), "close database")
    shutdown_telemetry()
