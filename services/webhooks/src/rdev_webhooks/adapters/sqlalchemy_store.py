"""The delivery store on SQLAlchemy: the same code on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol, TypeVar

from sqlalchemy import Row, Table, and_, bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from rdev_common import subjects
from rdev_common.db.tables import (
    Base,
    WebhookAttemptRow,
    WebhookDeliveryRow,
    WebhookOutboxRow,
    WebhookRow,
)
from rdev_common.events import CloudEvent
from rdev_common.webhook_events import SOURCE, WebhookDisabled
from rdev_webhooks.domain.model import (
    AttemptResult,
    Claim,
    Delivery,
    DeliveryStatus,
    Endpoint,
    NewDelivery,
    Outcome,
)
from rdev_webhooks.service_layer.ports import Recorded

PENDING = DeliveryStatus.PENDING.value
T = TypeVar("T")


class EndpointFields(Protocol):
    """What an endpoint is made of: a `WebhookRow`, a row of `_ENABLED_ENDPOINTS`, or one
    read by `SqliteThreads`."""

    @property
    def id(self) -> str: ...
    @property
    def project(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def events(self) -> Any: ...
    @property
    def secret(self) -> str: ...
    @property
    def previous_secret(self) -> str | None: ...
    @property
    def previous_secret_expires_at(self) -> datetime | None: ...
    @property
    def enabled(self) -> bool: ...


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


def _table(row: type[Base]) -> Table:
    return Base.metadata.tables[row.__tablename__]


# A delivery's claim and record run on SQLAlchemy Core, with statements built once: the
# ORM's identity map, change tracking and flush cost more CPU per delivery than the
# request. They are plain functions of a synchronous connection, so the same code runs
# through `run_sync` or, on a SQLite file, on `SqliteThreads`' thread in one hand-off.
# Parameters named as a column are its new value; `key` and `key_n` select the row.
HOOKS, DELIVERIES, ATTEMPTS = (
    _table(WebhookRow),
    _table(WebhookDeliveryRow),
    _table(WebhookAttemptRow),
)
_h, _d, _a = HOOKS.c, DELIVERIES.c, ATTEMPTS.c
# The delivery, its endpoint (None when deleted) and its last attempt, in one SELECT.
_CLAIM_READ = (
    select(
        _d.webhook_id,
        _d.project.label("delivery_project"),
        _d.event_id,
        _d.event_type,
        _d.payload,
        _d.status,
        _d.attempts,
        _d.next_attempt_at,
        _h.id,
        _h.project,
        _h.url,
        _h.events,
        _h.secret,
        _h.previous_secret,
        _h.previous_secret_expires_at,
        _h.enabled,
        _h.disabled_reason,
        _a.outcome.label("last_outcome"),
    )
    .select_from(
        DELIVERIES.outerjoin(HOOKS, _h.id == _d.webhook_id).outerjoin(
            ATTEMPTS, and_(_a.delivery_id == _d.id, _a.n == _d.attempts)
        )
    )
    .where(_d.id == bindparam("key"))
)
_ClaimRow = Row[*tuple[Any, ...]]
# The compare-and-set that makes one worker the owner of the next attempt.
_TAKE = update(DELIVERIES).where(
    _d.id == bindparam("key"), _d.attempts == bindparam("seen"), _d.status == PENDING
)
_SENDING = insert(ATTEMPTS)
_CLOSE_ATTEMPT = update(ATTEMPTS).where(
    _a.delivery_id == bindparam("key"), _a.n == bindparam("key_n")
)
_FINISH_DELIVERY = update(DELIVERIES).where(_d.id == bindparam("key"))
_HEALTH = select(_h.project, _h.failing_since, _h.enabled).where(_h.id == bindparam("key"))
_HEALTHY = update(HOOKS).where(_h.id == bindparam("key"), _h.failing_since.is_not(None))
_CHANGE_HOOK = update(HOOKS).where(_h.id == bindparam("key"))
# Only one of two replicas recording failures of one endpoint at once disables it.
_DISABLE_HOOK = update(HOOKS).where(_h.id == bindparam("key"), _h.enabled)
_TO_OUTBOX = insert(_table(WebhookOutboxRow))


def endpoint_of(row: EndpointFields, now: datetime) -> Endpoint:
    secrets = [row.secret]
    expires = row.previous_secret_expires_at
    if row.previous_secret and expires is not None and expires > now:
        secrets.append(row.previous_secret)
    events: Any = row.events
    return Endpoint(row.id, row.project, row.url, list(events), secrets, row.enabled)


class HotStatements(Protocol):
    """The statements run several times a second, done faster where the database allows."""

    async def enabled_endpoints(self, projects: Collection[str]) -> list[Endpoint]: ...
    async def due_endpoints(self, now: datetime) -> list[str]: ...
    async def transact(self, work: Callable[[Connection], T]) -> T:
        """Run `work` on a connection of its own; each delivery's claim and record."""
        ...


class SqlAlchemyDeliveryStore:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        serialize_writes: bool,
        sqlite_threads: HotStatements | None = None,
    ) -> None:
        self.sessions = sessions
        self._engine: AsyncEngine = sessions.kw["bind"]
        self.sqlite_threads = sqlite_threads  # on a SQLite file: `SqliteThreads`
        # SQLite has one writer: concurrent write transactions from this process would
        # only meet in its busy handler, which sleeps. Taking turns here is faster.
        self._writes = asyncio.Lock() if serialize_writes else contextlib.nullcontext()

    def _writer(self) -> contextlib.AbstractAsyncContextManager[Any]:
        return self._writes

    async def enabled_endpoints(self, projects: Collection[str]) -> list[Endpoint]:
        if self.sqlite_threads is not None:
            return await self.sqlite_threads.enabled_endpoints(projects)
        if not projects:
            return []
        async with self.sessions() as s:
            conn = await s.connection()
            rows = (await conn.execute(_ENABLED_ENDPOINTS, {"projects": sorted(projects)})).all()
        now = datetime.now(UTC)
        return [endpoint_of(r, now) for r in rows]

    async def add_deliveries(self, deliveries: list[NewDelivery]) -> int:
        """One INSERT … ON CONFLICT (dedup_key) DO NOTHING: a key recorded before, or by a
        concurrent consumer meanwhile, is skipped without failing the rest of the batch."""
        if not deliveries:
            return 0
        async with self._writer(), self.sessions() as s:
            insert = _insert_skipping_known((await s.connection()).dialect.name)
            added = len((await s.execute(insert, [_new_values(d) for d in deliveries])).all())
            await s.commit()
            return added

    async def due_endpoints(self, now: datetime) -> list[str]:
        if self.sqlite_threads is not None:
            return await self.sqlite_threads.due_endpoints(now)
        async with self.sessions() as s:
            rows = await s.scalars(
                select(WebhookDeliveryRow.webhook_id)
                .where(_due(now))
                .group_by(WebhookDeliveryRow.webhook_id)
            )
            return list(rows)

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

    async def next_due(self) -> datetime | None:
        async with self.sessions() as s:
            value = await s.scalar(
                select(func.min(WebhookDeliveryRow.next_attempt_at)).where(
                    WebhookDeliveryRow.status == PENDING
                )
            )
            return value

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
        return await self._transact(partial(_claim, delivery_id, now, lease_until, max_attempts))

    async def record(
        self,
        delivery: Delivery,
        attempt: int,
        result: AttemptResult,
        next_attempt_at: datetime | None,
        now: datetime,
        disable_after_s: float,
    ) -> Recorded:
        return await self._transact(
            partial(_record, delivery, attempt, result, next_attempt_at, now, disable_after_s)
        )

    async def _transact(self, work: Callable[[Connection], T]) -> T:
        """Run `work` (it commits what it keeps) in a transaction of its own."""
        async with self._writer():
            if self.sqlite_threads is not None:
                return await self.sqlite_threads.transact(work)
            async with self._engine.connect() as conn:
                return await conn.run_sync(work)


def _claim(
    delivery_id: str, now: datetime, lease_until: datetime, max_attempts: int, conn: Connection
) -> Claim | None:
    row = conn.execute(_CLAIM_READ, {"key": delivery_id}).one_or_none()
    if row is None or row.status != PENDING or (row.next_attempt_at or now) > now:
        return None
    interrupted = _close_interrupted(conn, delivery_id, row, now)
    n = row.attempts + 1
    stop = _why_stop(row, n, max_attempts)
    if stop is not None:
        conn.execute(_FINISH_DELIVERY, _failed_delivery(delivery_id, stop, now))
        conn.commit()
        delivery = _claimed(delivery_id, row, row.attempts)
        endpoint = endpoint_of(row, now) if row.id is not None else _gone_endpoint(row)
        return Claim(delivery, endpoint, 0, interrupted) if interrupted else None
    taken = dict(
        key=delivery_id, seen=n - 1, attempts=n, next_attempt_at=lease_until, updated_at=now
    )
    if conn.execute(_TAKE, taken).rowcount != 1:
        return None  # another worker claimed it between our read and write
    try:
        conn.execute(_SENDING, _sending(delivery_id, n, row.webhook_id, now))
        conn.commit()
    except IntegrityError:
        return None
    return Claim(_claimed(delivery_id, row, n), endpoint_of(row, now), n, interrupted)


def _record(
    delivery: Delivery,
    attempt: int,
    result: AttemptResult,
    next_attempt_at: datetime | None,
    now: datetime,
    disable_after_s: float,
    conn: Connection,
) -> Recorded:
    outcome = Outcome.SUCCEEDED if result.succeeded else Outcome.FAILED
    closed = dict(
        key=delivery.id,
        key_n=attempt,
        outcome=outcome.value,
        status_code=result.status_code,
        duration_ms=result.duration_ms,
        response_body=result.response_body,
        error=result.error,
        finished_at=now,
    )
    after = dict(
        key=delivery.id,
        status=_status_after(result, next_attempt_at).value,
        next_attempt_at=next_attempt_at,
        last_status_code=result.status_code,
        last_error=result.error,
        updated_at=now,
    )
    conn.execute(_CLOSE_ATTEMPT, closed)
    conn.execute(_FINISH_DELIVERY, after)
    reason = _track_health(conn, delivery.webhook_id, result, now, disable_after_s)
    conn.commit()
    return Recorded(disabled_reason=reason)


def _update(entity: Any) -> Any:
    """An UPDATE that leaves the session's loaded objects alone: no method reads one it
    updated this way, and keeping them in step costs an evaluation per object loaded."""
    return update(entity).execution_options(synchronize_session=False)


def _insert_skipping_known(dialect: str) -> Any:
    """INSERT of deliveries that skips a known `dedup_key` and returns the ids it added."""
    insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
    return (
        insert(WebhookDeliveryRow)
        .on_conflict_do_nothing(index_elements=[WebhookDeliveryRow.dedup_key])
        .returning(WebhookDeliveryRow.id)
    )


def _new_values(d: NewDelivery) -> dict[str, Any]:
    return dict(
        id=d.id,
        webhook_id=d.webhook_id,
        project=d.project,
        event_id=d.event_id,
        event_type=d.event_type,
        stream=d.stream,
        seq=d.seq,
        dedup_key=d.dedup_key,
        payload=d.payload,
        status=PENDING,
        attempts=0,
        next_attempt_at=d.next_attempt_at,
        created_at=d.next_attempt_at,
        updated_at=d.next_attempt_at,
    )


def _due(now: datetime) -> Any:
    return and_(
        WebhookDeliveryRow.status == PENDING,
        WebhookDeliveryRow.next_attempt_at <= now,
    )


def _gone_endpoint(row: _ClaimRow) -> Endpoint:
    return Endpoint(row.webhook_id, row.delivery_project, "", [], [], False)


def _claimed(delivery_id: str, row: _ClaimRow, attempts: int) -> Delivery:
    return Delivery(
        delivery_id, row.webhook_id, row.event_id, row.event_type, row.payload, attempts
    )


def _why_stop(row: _ClaimRow, n: int, max_attempts: int) -> str | None:
    if row.id is None:
        return "the webhook was deleted"
    if not row.enabled:
        return f"the webhook is disabled: {row.disabled_reason or 'by request'}"
    if n > max_attempts:
        return f"no attempt left after {max_attempts}"
    return None


def _close_interrupted(
    conn: Connection, delivery_id: str, row: _ClaimRow, now: datetime
) -> list[int]:
    """The last attempt, still `sending` when its lease ran out, was cut short by a crash."""
    if row.attempts == 0 or row.last_outcome != Outcome.SENDING.value:
        return []
    conn.execute(
        _CLOSE_ATTEMPT,
        dict(
            key=delivery_id,
            key_n=row.attempts,
            outcome=Outcome.INTERRUPTED.value,
            error="the webhooks service stopped during the attempt",
            finished_at=now,
        ),
    )
    return [row.attempts]


def _failed_delivery(delivery_id: str, error: str, now: datetime) -> dict[str, Any]:
    return dict(
        key=delivery_id,
        status=DeliveryStatus.FAILED.value,
        next_attempt_at=None,
        last_error=error,
        updated_at=now,
    )


def _sending(delivery_id: str, n: int, webhook_id: str, now: datetime) -> dict[str, Any]:
    return dict(
        delivery_id=delivery_id,
        n=n,
        webhook_id=webhook_id,
        outcome=Outcome.SENDING.value,
        started_at=now,
    )


def _status_after(result: AttemptResult, next_attempt_at: datetime | None) -> DeliveryStatus:
    if result.succeeded:
        return DeliveryStatus.SUCCEEDED
    return DeliveryStatus.PENDING if next_attempt_at is not None else DeliveryStatus.FAILED


def _track_health(
    conn: Connection,
    webhook_id: str,
    result: AttemptResult,
    now: datetime,
    disable_after_s: float,
) -> str | None:
    """Reset the failure streak on success; disable on 410 or a streak that lasted too long."""
    if result.succeeded:  # the common case: one UPDATE that usually matches nothing
        conn.execute(_HEALTHY, {"key": webhook_id, "failing_since": None})
        return None
    hook = conn.execute(_HEALTH, {"key": webhook_id}).one_or_none()
    if hook is None:
        return None
    changes: dict[str, Any] = {}
    since = hook.failing_since
    if since is None:
        changes["failing_since"] = since = now
    reason = None
    if result.gone:
        reason = "the endpoint answered 410 Gone"
    elif (now - since).total_seconds() >= disable_after_s:
        reason = f"failing continuously since {since.isoformat()}"
    if reason is not None and hook.enabled:
        changes.update(enabled=False, disabled_reason=reason, updated_at=now)
        if conn.execute(_DISABLE_HOOK, {"key": webhook_id, **changes}).rowcount != 1:
            return None  # disabled meanwhile, and announced, by another replica
        event = WebhookDisabled(webhook_id=webhook_id, project=hook.project, reason=reason)
        _announce(conn, event, now)
        return reason
    if changes:
        conn.execute(_CHANGE_HOOK, {"key": webhook_id, **changes})
    return None


def _announce(conn: Connection, event: WebhookDisabled, now: datetime) -> None:
    """The event of the change, into the outbox in the change's transaction: the relay
    publishes it, so a crash after the commit cannot lose it."""
    envelope = CloudEvent.wrap(
        event, source=SOURCE, subject=event.webhook_id, project=event.project
    )
    row = {
        "id": envelope.id,
        "subject": subjects.webhook(event.webhook_id, "disabled"),
        "payload": envelope.to_bytes().decode(),
        "created_at": now,
        "attempts": 0,
    }
    conn.execute(_TO_OUTBOX, row)
