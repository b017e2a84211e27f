"""A delivery's claim and record: SQLAlchemy Core, the same code on SQLite and PostgreSQL.

The rules (may the attempt be made, what the result makes of the delivery and of its
endpoint's health) are domain.delivery's; this module loads what they need and saves
what they decide. The statements are built once: the ORM's identity map, change tracking and flush
cost more CPU per delivery than the request. `claim` and `record` are plain
functions of a synchronous connection, each one transaction, so the same code runs
through `run_sync` or, on a SQLite file, on `SqliteThreads`' thread in one hand-off.
Each writes the attempt's event (`webhook.attempt`, and `webhook.disabled` when it
disables the endpoint) to the outbox in its transaction.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Row, Table, and_, bindparam, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from rdev_common import subjects
from rdev_common.db.tables import (
    Base,
    WebhookAttemptRow,
    WebhookDeliveryRow,
    WebhookOutboxRow,
    WebhookRow,
)
from rdev_common.events import CloudEvent
from rdev_common.webhook_events import SOURCE, DeliveryAttempted, WebhookDisabled
from rdev_webhooks.domain.delivery import Health, Target, health_after, status_after, stop_reason
from rdev_webhooks.domain.model import (
    AttemptResult,
    Claim,
    Delivery,
    DeliveryStatus,
    Endpoint,
    Outcome,
)
from rdev_webhooks.service_layer.ports import Recorded

PENDING = DeliveryStatus.PENDING.value
INTERRUPTED = (
    "the result of the attempt was never recorded (the service stopped, or its database was away)"
)


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


def endpoint_of(row: EndpointFields, now: datetime) -> Endpoint:
    secrets = [row.secret]
    expires = row.previous_secret_expires_at
    if row.previous_secret and expires is not None and expires > now:
        secrets.append(row.previous_secret)
    events: Any = row.events
    return Endpoint(row.id, row.project, row.url, list(events), secrets, row.enabled)


def _table(row: type[Base]) -> Table:
    return Base.metadata.tables[row.__tablename__]


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
# Only an attempt still `sending` is closed: a result that arrives after its lease ran
# out (the attempt closed as interrupted meanwhile, the next one taken) changes nothing,
# and of two replicas closing the same interrupted attempt only one does.
_CLOSE_ATTEMPT = update(ATTEMPTS).where(
    _a.delivery_id == bindparam("key"),
    _a.n == bindparam("key_n"),
    _a.outcome == Outcome.SENDING.value,
)
_FINISH_DELIVERY = update(DELIVERIES).where(_d.id == bindparam("key"))
_HEALTH = select(_h.project, _h.failing_since, _h.enabled).where(_h.id == bindparam("key"))
_HEALTHY = update(HOOKS).where(_h.id == bindparam("key"), _h.failing_since.is_not(None))
_CHANGE_HOOK = update(HOOKS).where(_h.id == bindparam("key"))
# Only one of two replicas recording failures of one endpoint at once disables it.
_DISABLE_HOOK = update(HOOKS).where(_h.id == bindparam("key"), _h.enabled)
_TO_OUTBOX = insert(_table(WebhookOutboxRow))


def claim(
    delivery_id: str, now: datetime, lease_until: datetime, max_attempts: int, conn: Connection
) -> Claim | None:
    row = conn.execute(_CLAIM_READ, {"key": delivery_id}).one_or_none()
    if row is None or row.status != PENDING or (row.next_attempt_at or now) > now:
        return None
    interrupted = _close_interrupted(conn, delivery_id, row, now)
    n = row.attempts + 1
    target = Target(row.id is not None, bool(row.enabled), row.disabled_reason)
    stop = stop_reason(target, n, max_attempts)
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


def record(
    delivery: Delivery,
    attempt: int,
    result: AttemptResult,
    next_attempt_at: datetime | None,
    now: datetime,
    disable_after_s: float,
    event: DeliveryAttempted,
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
        status=status_after(result, next_attempt_at).value,
        next_attempt_at=next_attempt_at,
        last_status_code=result.status_code,
        last_error=result.error,
        updated_at=now,
    )
    if conn.execute(_CLOSE_ATTEMPT, closed).rowcount != 1:
        conn.rollback()
        return Recorded(disabled_reason=None, late=True)
    conn.execute(_FINISH_DELIVERY, after)
    _to_outbox(conn, event, now)
    reason = _track_health(conn, delivery.webhook_id, result, now, disable_after_s)
    conn.commit()
    return Recorded(disabled_reason=reason)


def _gone_endpoint(row: _ClaimRow) -> Endpoint:
    return Endpoint(row.webhook_id, row.delivery_project, "", [], [], False)


def _claimed(delivery_id: str, row: _ClaimRow, attempts: int) -> Delivery:
    return Delivery(
        delivery_id, row.webhook_id, row.event_id, row.event_type, row.payload, attempts
    )


def _close_interrupted(
    conn: Connection, delivery_id: str, row: _ClaimRow, now: datetime
) -> list[int]:
    """The last attempt, still `sending` when its lease ran out, was cut short (a crash,
    or a database that refused its result): closed, and its event written."""
    if row.attempts == 0 or row.last_outcome != Outcome.SENDING.value:
        return []
    closed = dict(
        key=delivery_id,
        key_n=row.attempts,
        outcome=Outcome.INTERRUPTED.value,
        error=INTERRUPTED,
        finished_at=now,
    )
    if conn.execute(_CLOSE_ATTEMPT, closed).rowcount != 1:
        return []  # closed meanwhile by another replica, with its event
    event = DeliveryAttempted(
        webhook_id=row.webhook_id,
        delivery_id=delivery_id,
        event_id=row.event_id,
        event_kind=row.event_type,
        attempt=row.attempts,
        outcome="interrupted",
        error=INTERRUPTED,
        next_attempt_in_s=0.0,
    )
    _to_outbox(conn, event, now)
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


def _track_health(
    conn: Connection,
    webhook_id: str,
    result: AttemptResult,
    now: datetime,
    disable_after_s: float,
) -> str | None:
    """Save what the result does to the endpoint's health (domain.delivery.health_after);
    the reason when it disabled the endpoint."""
    if result.succeeded:  # the common case: one UPDATE that usually matches nothing
        conn.execute(_HEALTHY, {"key": webhook_id, "failing_since": None})
        return None
    hook = conn.execute(_HEALTH, {"key": webhook_id}).one_or_none()
    if hook is None:
        return None
    change = health_after(Health(hook.failing_since, hook.enabled), result, now, disable_after_s)
    changes: dict[str, Any] = {"failing_since": change.failing_since} if change.start_streak else {}
    if change.disable is not None:
        changes.update(enabled=False, disabled_reason=change.disable, updated_at=now)
        if conn.execute(_DISABLE_HOOK, {"key": webhook_id, **changes}).rowcount != 1:
            return None  # disabled meanwhile, and announced, by another replica
        event = WebhookDisabled(webhook_id=webhook_id, project=hook.project, reason=change.disable)
        _to_outbox(conn, event, now)
        return change.disable
    if changes:
        conn.execute(_CHANGE_HOOK, {"key": webhook_id, **changes})
    return None


def attempt_event_id(delivery_id: str, n: int) -> str:
    """The one id an attempt's event can have: the outbox's key and the stream's
    de-duplication refuse a second event of the same attempt."""
    return str(uuid.uuid5(uuid.UUID(int=0), f"webhook-attempt.{delivery_id}.{n}"))


def _to_outbox(conn: Connection, event: DeliveryAttempted | WebhookDisabled, now: datetime) -> None:
    """An event of the change, into the outbox in the change's transaction: the relay
    publishes it on `rdev.webhooks.<webhook id>.<kind>`, so the stream and the tables
    never disagree and no crash loses it."""
    project = event.project if isinstance(event, WebhookDisabled) else None
    envelope = CloudEvent.wrap(event, source=SOURCE, subject=event.webhook_id, project=project)
    if isinstance(event, DeliveryAttempted):
        envelope = envelope.model_copy(
            update={"id": attempt_event_id(event.delivery_id, event.attempt)}
        )
    row = {
        "id": envelope.id,
        "subject": subjects.webhook_event(event.webhook_id, event.kind),
        "payload": envelope.to_bytes().decode(),
        "created_at": now,
        "attempts": 0,
    }
    conn.execute(_TO_OUTBOX, row)
