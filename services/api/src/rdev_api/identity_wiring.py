"""Wires identity and access into the api: cached repositories, the outbox relay, the
admin-event listener, the shared rate limiter, and the batched `last_used_at` writer.

Called from the composition root once the broker and the database are up.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rdev_api.adapters.cached_identity import CachedUnitOfWork, IdentityCache
from rdev_api.adapters.nats_active_commands import NatsActiveCommands
from rdev_api.adapters.nats_admin_listener import listen
from rdev_api.adapters.nats_rate_limiter import NatsRateLimiter
from rdev_api.adapters.nats_secret_store import NatsKvSecretStore
from rdev_api.adapters.sqlalchemy_repositories import SqlAlchemyUnitOfWork
from rdev_api.service_layer.apikey_service import flush_usage
from rdev_api.service_layer.ports import (
    ActiveCommands,
    RateLimiter,
    SecretStore,
    Services,
    UnitOfWork,
)
from rdev_api.service_layer.project_service import current_secrets
from rdev_api.settings import ApiSettings
from rdev_common.db import outage
from rdev_common.outbox import OutboxRelay, nats_publisher
from rdev_common.sealing import Sealer
from rdev_common.streams import ADMIN, ensure_rate_limit_stream

log = structlog.get_logger()


@dataclass
class IdentityRuntime:
    services: Services
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    subscription: Any = None

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await flush_usage(self.services.uow(), self.services.key_usage)
        if self.subscription is not None:
            with contextlib.suppress(Exception):
                await self.subscription.unsubscribe()


async def _flush_usage_forever(services: Services, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        try:
            await flush_usage(services.uow(), services.key_usage)
        except Exception as exc:
            if not outage.said(exc):
                log.warning("last_used_at flush failed", error=type(exc).__name__)


async def _sync_secrets(uow: UnitOfWork, store: SecretStore) -> None:
    """Heal a crash between a project commit and the secret-store write, and seal every
    project's secrets under the current first key (after a rotation, the log line
    saying all were written is the sign that the old key may go). Each project is read
    again as it is written, so an update made meanwhile is not undone."""
    try:
        async with uow:
            projects = await uow.projects.list()
    except Exception as exc:
        log.warning("secret store sync failed", error=type(exc).__name__)
        return
    failed = []
    for project in projects:
        try:
            await store.sync(project.id, functools.partial(current_secrets, uow, project.id))
        except Exception as exc:
            failed.append(project.id)
            log.warning("secret store write failed", project=project.id, error=type(exc).__name__)
    if failed:
        log.warning(
            "project secrets not all written",
            written=len(projects) - len(failed),
            failed=len(failed),
        )
    else:
        log.info("project secrets written", projects=len(projects))


@dataclass(frozen=True)
class IdentityParts:
    """The identity adapters the api's Services are built with, and what runs them."""

    uow: Callable[[], UnitOfWork]
    rate_limiter: RateLimiter
    active_commands: ActiveCommands
    secret_store: SecretStore
    cache: IdentityCache
    relay: OutboxRelay


async def identity_parts(
    settings: ApiSettings,
    nc: Client,
    js: JetStreamContext,
    sessions: async_sessionmaker[AsyncSession],
    sealer: Sealer | None,
) -> IdentityParts:
    """Build the identity adapters: cached repositories over SQL with the outbox relay,
    the shared rate limiter, the active-commands counter, the secret store."""
    try:
        await ensure_rate_limit_stream(js, settings)
    except Exception as exc:  # e.g. a server without counters: the limiter then fails open
        log.error("rate-limit stream unavailable, requests are not limited", error=str(exc))
    relay = OutboxRelay(
        sessions,
        nats_publisher(js, ADMIN),
        poll_s=settings.outbox_poll_s,
        keep_s=settings.outbox_keep_s,
    )
    cache = IdentityCache(settings.identity_cache_ttl_s, stale_s=settings.identity_cache_stale_s)
    if sealer is None:
        log.warning(
            "RDEV_SECRETS_KEY is not set: project secrets are written to the broker unsealed"
        )
    return IdentityParts(
        uow=lambda: CachedUnitOfWork(SqlAlchemyUnitOfWork(sessions, relay.wake), cache),
        rate_limiter=NatsRateLimiter(nc, js),
        active_commands=NatsActiveCommands(js),
        secret_store=NatsKvSecretStore(js, sealer),
        cache=cache,
        relay=relay,
    )


async def start_identity(
    settings: ApiSettings, js: JetStreamContext, parts: IdentityParts, services: Services
) -> IdentityRuntime:
    """Start what keeps identity current: the admin-event listener (cache), the outbox
    relay, the batched `last_used_at` writer, the secret-store sync."""
    runtime = IdentityRuntime(services, subscription=await listen(js, parts.cache))
    if settings.outbox_relay_enabled:
        runtime.tasks.append(asyncio.create_task(parts.relay.run(), name="outbox-relay"))
    runtime.tasks.append(
        asyncio.create_task(
            _flush_usage_forever(services, settings.last_used_flush_s), name="last-used"
        )
    )
    runtime.tasks.append(
        asyncio.create_task(_sync_secrets(services.uow(), parts.secret_store), name="secrets")
    )
    return runtime
