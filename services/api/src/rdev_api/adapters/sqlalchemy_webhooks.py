"""Webhook registrations and delivery history on SQLAlchemy (SQLite and PostgreSQL).

Admin events are written to the `outbox` table in the transaction of the change;
the outbox relay publishes them to RDEV_ADMIN, so a change and its event never
disagree.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rdev_api.domain.webhooks import Attempt, Delivery, DeliveryFilter, NewDelivery, Webhook
from rdev_common import subjects
from rdev_common.db import webhook_deliveries
from rdev_common.db.tables import OutboxRow, WebhookAttemptRow, WebhookDeliveryRow, WebhookRow
from rdev_common.events import CloudEvent
from rdev_common.webhook_rules import event_kind


def _webhook(row: WebhookRow) -> Webhook:
    events: Any = row.events
    return Webhook(
        id=row.id,
        project=row.project,
        url=row.url,
        events=list(events),
        enabled=row.enabled,
        secret=row.secret,
        description=row.description,
        previous_secret=row.previous_secret,
        previous_secret_expires_at=row.previous_secret_expires_at,
        disabled_reason=row.disabled_reason,
        failing_since=row.failing_since,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _fill(row: WebhookRow, w: Webhook) -> None:
    row.project, row.url, row.events, row.enabled = w.project, w.url, w.events, w.enabled
    row.secret, row.description = w.secret, w.description
    row.previous_secret = w.previous_secret
    row.previous_secret_expires_at = w.previous_secret_expires_at
    row.disabled_reason, row.failing_since = w.disabled_reason, w.failing_since
    row.created_at, row.updated_at = w.created_at, w.updated_at


def _delivery(row: WebhookDeliveryRow, history: list[Attempt] | None = None) -> Delivery:
    return Delivery(
        id=row.id,
        webhook_id=row.webhook_id,
        project=row.project,
        event_id=row.event_id,
        event_type=row.event_type,
        stream=row.stream,
        seq=row.seq,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        created_at=row.created_at,
        updated_at=row.updated_at,
        history=history or [],
    )


def _attempt(row: WebhookAttemptRow) -> Attempt:
    return Attempt(
        n=row.n,
        outcome=row.outcome,
        started_at=row.started_at,
        status_code=row.status_code,
        duration_ms=row.duration_ms,
        response_body=row.response_body,
        error=row.error,
        finished_at=row.finished_at,
    )


def _outbox(event: CloudEvent) -> OutboxRow:
    entity, action = event_kind(event.type).split(".", 1)
    return OutboxRow(
        id=event.id,
        subject=subjects.admin(entity, action),
        payload=event.to_bytes().decode(),
        created_at=event.time,
        attempts=0,
    )


class SqlAlchemyWebhookStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def add(self, webhook: Webhook, event: CloudEvent) -> None:
        row = WebhookRow(id=webhook.id)
        _fill(row, webhook)
        async with self.sessions() as s:
            s.add_all([row, _outbox(event)])
            await s.commit()

    async def get(self, project: str, webhook_id: str) -> Webhook | None:
        async with self.sessions() as s:
            row = await s.get(WebhookRow, webhook_id)
            return _webhook(row) if row is not None and row.project == project else None

    async def of_project(self, project: str) -> list[Webhook]:
        async with self.sessions() as s:
            rows = await s.scalars(
                select(WebhookRow).where(WebhookRow.project == project).order_by(WebhookRow.id)
            )
            return [_webhook(r) for r in rows]

    async def save(self, webhook: Webhook, event: CloudEvent) -> None:
        async with self.sessions() as s:
            row = await s.get(WebhookRow, webhook.id)
            if row is None:
                return
            _fill(row, webhook)
            s.add(_outbox(event))
            await s.commit()

    async def delete(self, webhook: Webhook, event: CloudEvent) -> None:
        """The registration goes; its delivery history stays (pending ones fail as deleted)."""
        async with self.sessions() as s:
            await s.execute(delete(WebhookRow).where(WebhookRow.id == webhook.id))
            s.add(_outbox(event))
            await s.commit()

    async def deliveries(self, webhook_id: str, where: DeliveryFilter) -> list[Delivery]:
        query = select(WebhookDeliveryRow).where(WebhookDeliveryRow.webhook_id == webhook_id)
        if where.status:
            query = query.where(WebhookDeliveryRow.status == where.status)
        if where.event_type:
            query = query.where(WebhookDeliveryRow.event_type == where.event_type)
        if where.event_id:
            query = query.where(WebhookDeliveryRow.event_id == where.event_id)
        if where.before_id:
            query = query.where(WebhookDeliveryRow.id < where.before_id)
        query = query.order_by(WebhookDeliveryRow.id.desc()).limit(where.limit)
        async with self.sessions() as s:
            return [_delivery(r) for r in await s.scalars(query)]

    async def delivery(self, webhook_id: str, delivery_id: str) -> tuple[Delivery, str] | None:
        async with self.sessions() as s:
            row = await s.get(WebhookDeliveryRow, delivery_id)
            if row is None or row.webhook_id != webhook_id:
                return None
            attempts = await s.scalars(
                select(WebhookAttemptRow)
                .where(WebhookAttemptRow.delivery_id == delivery_id)
                .order_by(WebhookAttemptRow.n)
            )
            return _delivery(row, [_attempt(a) for a in attempts]), row.payload

    async def add_deliveries(self, deliveries: list[NewDelivery]) -> int:
        """Through the webhooks service's own INSERT (rdev_common.db.webhook_deliveries)."""
        rows = [webhook_deliveries.pending_delivery(d, d.created_at) for d in deliveries]
        async with self.sessions() as s:
            added = await webhook_deliveries.add_deliveries(s, rows)
            await s.commit()
            return added
