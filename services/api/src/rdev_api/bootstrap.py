"""Composition root of the api: builds the adapters and the FastAPI app. No I/O at import."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import structlog
from fastapi import FastAPI
from sqlalchemy import text

from rdev_api.adapters.nats_command_log import NatsCommandLog
from rdev_api.adapters.nats_queue import NatsQueue
from rdev_api.adapters.nats_run_input import NatsRunInput
from rdev_api.adapters.nats_run_reader import NatsRunReader
from rdev_api.adapters.sqlalchemy_audit_reader import SqlAlchemyAuditReader
from rdev_api.entrypoints.http.app import build_app
from rdev_api.identity_wiring import identity_parts, start_identity
from rdev_api.service_layer.auth import ensure_bootstrap_key
from rdev_api.service_layer.ports import Services
from rdev_api.settings import ApiSettings
from rdev_api.webhooks_wiring import webhook_services
from rdev_common.broker import connect
from rdev_common.db.engine import create_engine, session_factory
from rdev_common.service import settle_heap, unsettle_heap
from rdev_common.streams import ensure_buckets, ensure_streams

log = structlog.get_logger()


def utcnow() -> datetime:
    return datetime.now(UTC)


def _save_generated_key(settings: ApiSettings, secret: str) -> None:
    path = settings.data_dir / "admin.key"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secret + "\n")
    print(f"\nrdev admin API key (shown once, also saved to {path}):\n\n    {secret}\n", flush=True)


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or ApiSettings()
    sealer = settings.secrets_sealer()  # a malformed RDEV_SECRETS_KEY stops the api here

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nc = await connect(settings.require_nats_url(), "rdev-api", **settings.nats_credentials())
        js = nc.jetstream()
        await ensure_streams(js, settings)
        await ensure_buckets(js, settings)
        engine = create_engine(settings.resolved_database_url())
        sessions = session_factory(engine)

        async def database_answers() -> bool:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True

        async def broker_answers() -> bool:
            await js.account_info()
            return nc.is_connected

        parts = await identity_parts(settings, nc, js, sessions, sealer)
        services = Services(
            uow=parts.uow,
            command_log=NatsCommandLog(js),
            run_reader=NatsRunReader(nc),
            queue=NatsQueue(js),
            clock=utcnow,
            ready_checks={"nats": broker_answers, "database": database_answers},
            rate_limiter=parts.rate_limiter,
            active_commands=parts.active_commands,
            secret_store=parts.secret_store,
            run_input=NatsRunInput(nc),
        )
        identity = await start_identity(settings, js, parts, services)
        secret = settings.bootstrap_key.get_secret_value() if settings.bootstrap_key else None
        generated = await ensure_bootstrap_key(services.uow(), secret, services.clock())
        if generated:
            _save_generated_key(settings, generated)
        app.state.services = services
        app.state.settings = settings
        app.state.audit_reader = SqlAlchemyAuditReader(sessions)
        app.state.webhooks = webhook_services(
            js, sessions, utcnow, settings.webhooks_allow_private_targets
        )
        settle_heap()
        log.info("api started", host=settings.host, port=settings.port)
        try:
            yield
        finally:
            unsettle_heap()
            await identity.close()
            await nc.drain()
            await engine.dispose()

    return build_app(lifespan)
