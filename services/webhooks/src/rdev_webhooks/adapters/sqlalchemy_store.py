"""The delivery store on SQLAlchemy: the same code on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol, TypeVar

from sqlalchemy import and_, bindparam, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from rdev_common.db import webhook_deliveries
from rdev_common.db.tables import WebhookDeliveryRow, WebhookRow
from rdev_common.webhook_events import DeliveryAttempted
from rdev_webhooks.adapters import sqlalchemy_attempts
from rdev_webhooks.adapters.sqlalchemy_attempts import PENDING, endpoint_of
from rdev_webhooks.domain.model import AttemptResult, Claim, Delivery, Endpoint, NewDelivery
from rdev_webhooks.service_layer.ports import Recorded

T = TypeVar("T")


# Built once (the lifecycle consumer runs it for every batch): only the columns an
# Endpoint needs, read as plain rows, no ORM entities.
_ENABLED_ENDPOINTS = select(
    WebhookRow.id,
    WebhookRow.project,
    WebhookRow.url,
    WebhookRow.events,
    WebhookRow.secret,
    WebhookRow.previous_secret,
    WebhookRow.previous_secret_expires_at,
    WebhookRow.enabled,
).where(WebhookRow.project.in_(bindparam("projects", expanding=True)), WebhookRow.enabled)


_DUE_ENDPOINTS = (
    select(WebhookDeliveryRow.webhook_id)
    .where(
        WebhookDeliveryRow.status == PENDING,
        WebhookDeliveryRow.next_attempt_at <= bindparam("now"),
    )
    .group_by(WebhookDeliveryRow.webhook_id)
)


class HotStatements(Protocol):
    """The statements run several times a second, done faster where the database allows."""

    async def enabled_endpoints(self, projects: Collection[str]) -> list[Endpoint]: ...
    async def due_endpoints(self, now: datetime) -> list[str]: ...
    async def transact(self, work: Callable[[Connection], T]) -> T:
        """Run `work` on a connection of its own; each delivery's claim and record."""
        ...


class EngineStatements:
    """The hot statements through the async engine: PostgreSQL, or SQLite without a file."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def enabled_endpoints(self, projects: Collection[str]) -> list[Endpoint]:
        if not projects:
            return []
        async with self.engine.connect() as conn:
            rows = (await conn.execute(_ENABLED_ENDPOINTS, {"projects": sorted(projects)})).all()
        now = datetime.now(UTC)
        return [endpoint_of(r, now) for r in rows]

    async def due_endpoints(self, now: datetime) -> list[str]:
        async with self.engine.connect() as conn:
            return list(await conn.scalars(_DUE_ENDPOINTS, {"now": now}))

    async def transact(self, work: Callable[[Connection], T]) -> T:
        async with self.engine.connect() as conn:
            return await conn.run_sync(work)


class SqlAlchemyDeliveryStore:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        serialize_writes: bool,
        sqlite_threads: HotStatements | None = None,
    ) -> None:
        self.sessions = sessions
        self._engine: AsyncEngine = sessions.kw["bind"]
        # The one seam between the store and its database for the hot statements and
        # each delivery's claim and record: on a SQLite file `SqliteThreads` (threads
        # of its own, off the event loop), else the async engine.
        self.hot: HotStatements = (
            sqlite_threads if sqlite_threads is not None else EngineStatements(self._engine)
        )
        # SQLite has one writer: concurrent write transactions from this process would
        # only meet in its busy handler, which sleeps. Taking turns here is faster.
        self._writes = asyncio.Lock() if serialize_writes else contextlib.nullcontext()

    def _writer(self) -> contextlib.AbstractAsyncContextManager[Any]:
        return self._writes

    @property
    def writes(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """The turn every write of this process takes (SQLite), for the outbox relay too."""
        return self._writes

    async def enabled_endpoints(self, projects: Collection[str]) -> list[Endpoint]:
        return await self.hot.enabled_endpoints(projects)

    async def add_deliveries(self, deliveries: list[NewDelivery]) -> int:
        """One INSERT … ON CONFLICT (dedup_key) DO NOTHING: a key recorded before, or by a
        concurrent consumer meanwhile, is skipped without failing the rest of the batch."""
        if not deliveries:
            return 0
        async with self._writer(), self.sessions() as s:
            added = await webhook_deliveries.add_deliveries(s, [_new_values(d) for d in deliveries])
            await s.commit()
            return added

    async def due_endpoints(self, now: datetime) -> list[str]:
        return await self.hot.due_endpoints(now)

    async def due_deliveries(
        self, webhook_id: str, now: datetime, exclude: set[str], limit: int
    ) -> list[str]:
        query = (
            select(WebhookDeliveryRow.id)
            .where(_due(now), WebhookDeliveryRow.webhook_id == webhook_id)
            .order_by(WebhookDeliveryRow.next_attempt_at, WebhookDeliveryRow.id)
            .limit(limit)
        )
        if exclude:
            query = query.where(WebhookDeliveryRow.id.not_in(exclude))
        async with self.sessions() as s:
            return list(await s.scalars(query))

    async def defer(self, delivery_id: str, until: datetime) -> None:
        async with self._writer(), self.sessions() as s:
            await s.execute(
                _update(WebhookDeliveryRow)
                .where(WebhookDeliveryRow.id == delivery_id, WebhookDeliveryRow.status == PENDING)
                .values(next_attempt_at=until)
            )
            await s.commit()

    async def claim(
        self, delivery_id: str, now: datetime, lease_until: datetime, max_attempts: int
    ) -> Claim | None:
        return await self._transact(
            partial(sqlalchemy_attempts.claim, delivery_id, now, lease_until, max_attempts)
        )

    async def record(
        self,
        delivery: Delivery,
        attempt: int,
        result: AttemptResult,
        next_attempt_at: datetime | None,
        now: datetime,
        disable_after_s: float,
        event: DeliveryAttempted,
    ) -> Recorded:
        work = partial(
            sqlalchemy_attempts.record,
            delivery,
            attempt,
            result,
            next_attempt_at,
            now,
            disable_after_s,
            event,
        )
        return await self._transact(work)

    async def _transact(self, work: Callable[[Connection], T]) -> T:
        """Run `work` (it commits what it keeps) in a transaction of its own."""
        async with self._writer():
            return await self.hot.transact(work)


def _update(entity: Any) -> Any:
    """An UPDATE that leaves the session's loaded objects alone: no method reads one it
    updated this way, and keeping them in step costs an evaluation per object loaded."""
    return update(entity).execution_options(synchronize_session=False)


def _new_values(d: NewDelivery) -> dict[str, Any]:
    return webhook_deliveries.pending_delivery(d, d.next_attempt_at)


def _due(now: datetime) -> Any:
    return and_(
        WebhookDeliveryRow.status == PENDING,
        WebhookDeliveryRow.next_attempt_at <= now,
    )
