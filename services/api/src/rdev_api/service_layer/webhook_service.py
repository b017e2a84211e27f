"""Use cases on webhooks: registrations, secrets, delivery history, redelivery and replay.

The api only records; the webhooks service sends. A redelivery or a replay is a
new delivery row (new `webhook-id`, same CloudEvent), which the webhooks service
picks up like any other due delivery.
"""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import uuid6

from rdev_api.domain.model import Principal, Scope
from rdev_api.domain.webhooks import Delivery, DeliveryFilter, EventRef, NewDelivery, Webhook
from rdev_api.service_layer import project_service
from rdev_api.service_layer.auth import require_scope
from rdev_api.service_layer.ports import UnitOfWork
from rdev_api.service_layer.webhook_ports import WebhookServices
from rdev_common import webhook_rules
from rdev_common.errors import NotFound, ValidationFailed
from rdev_common.events import CloudEvent
from rdev_common.ids import new_id
from rdev_common.webhook_events import ADMIN_ACTIONS, WebhookRotated

MAX_REPLAY = 10_000
MAX_SEQUENCE = 2**63 - 1  # a JetStream sequence is a uint64; NATS clients take int64
MAX_OVERLAP = timedelta(days=7)


def generate_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def new_delivery_id() -> str:
    return "msg_" + uuid6.uuid7().hex


def _admin_event(webhook: Webhook, action: str, principal: Principal) -> CloudEvent:
    payload = ADMIN_ACTIONS[action](
        webhook_id=webhook.id,
        project=webhook.project,
        url=webhook.url,
        events=webhook.events,
        enabled=webhook.enabled,
        actor=principal.key.id,
    )
    if isinstance(payload, WebhookRotated):
        payload = payload.model_copy(
            update={"previous_valid_until": webhook.previous_secret_expires_at}
        )
    return CloudEvent.wrap(
        payload,
        source="rdev/api",
        subject=webhook.id,
        project=webhook.project,
        actor=principal.key.id,
    )


async def _visible(uow: UnitOfWork, principal: Principal, project: str) -> None:
    await project_service.get_project(uow, principal, project)


async def create(
    ws: WebhookServices,
    uow: UnitOfWork,
    principal: Principal,
    project: str,
    *,
    url: str,
    events: list[str],
    description: str | None,
) -> Webhook:
    """Register an endpoint; the returned webhook carries its secret (shown once)."""
    require_scope(principal, Scope.WEBHOOKS_WRITE)
    await _visible(uow, principal, project)
    patterns = webhook_rules.event_patterns(events)
    await webhook_rules.check_destination(url, ws.allow_private_targets)
    now = ws.clock()
    webhook = Webhook(
        id=new_id(),
        project=project,
        url=url,
        events=patterns,
        enabled=True,
        secret=generate_secret(),
        description=description,
        created_at=now,
        updated_at=now,
    )
    await ws.store.add(webhook, _admin_event(webhook, "created", principal))
    return webhook


async def get(
    ws: WebhookServices, uow: UnitOfWork, principal: Principal, project: str, webhook_id: str
) -> Webhook:
    await _visible(uow, principal, project)
    webhook = await ws.store.get(project, webhook_id)
    if webhook is None:
        raise NotFound(f"webhook {webhook_id!r} not found", field="webhook")
    return webhook


async def list_webhooks(
    ws: WebhookServices, uow: UnitOfWork, principal: Principal, project: str
) -> list[Webhook]:
    await _visible(uow, principal, project)
    return await ws.store.of_project(project)


async def update(
    ws: WebhookServices,
    uow: UnitOfWork,
    principal: Principal,
    project: str,
    webhook_id: str,
    changes: dict[str, Any],
) -> Webhook:
    """Change url, events, description or enabled; enabling clears the failure record."""
    require_scope(principal, Scope.WEBHOOKS_WRITE)
    webhook = await get(ws, uow, principal, project, webhook_id)
    fields: dict[str, Any] = {}
    if changes.get("url") is not None:
        await webhook_rules.check_destination(changes["url"], ws.allow_private_targets)
        fields["url"] = changes["url"]
    if changes.get("events") is not None:
        fields["events"] = webhook_rules.event_patterns(changes["events"])
    if "description" in changes:
        fields["description"] = changes["description"]
    if changes.get("enabled") is not None:
        fields["enabled"] = bool(changes["enabled"])
        if fields["enabled"]:
            fields.update(disabled_reason=None, failing_since=None)
        elif webhook.enabled:
            fields["disabled_reason"] = "disabled by request"
    updated = replace(webhook, **fields, updated_at=ws.clock())
    await ws.store.save(updated, _admin_event(updated, "updated", principal))
    return updated


async def delete(
    ws: WebhookServices, uow: UnitOfWork, principal: Principal, project: str, webhook_id: str
) -> None:
    require_scope(principal, Scope.WEBHOOKS_WRITE)
    webhook = await get(ws, uow, principal, project, webhook_id)
    await ws.store.delete(webhook, _admin_event(webhook, "deleted", principal))


async def rotate_secret(
    ws: WebhookServices,
    uow: UnitOfWork,
    principal: Principal,
    project: str,
    webhook_id: str,
    overlap: timedelta,
) -> Webhook:
    """A new secret; the old one keeps signing (both signatures sent) for `overlap`."""
    require_scope(principal, Scope.WEBHOOKS_WRITE)
    if overlap < timedelta(0) or overlap > MAX_OVERLAP:
        raise ValidationFailed("overlap_s must be between 0 and 7 days", field="overlap_s")
    webhook = await get(ws, uow, principal, project, webhook_id)
    now = ws.clock()
    rotated = replace(
        webhook,
        secret=generate_secret(),
        previous_secret=webhook.secret if overlap > timedelta(0) else None,
        previous_secret_expires_at=now + overlap if overlap > timedelta(0) else None,
        updated_at=now,
    )
    await ws.store.save(rotated, _admin_event(rotated, "rotated", principal))
    return rotated


async def list_deliveries(
    ws: WebhookServices,
    uow: UnitOfWork,
    principal: Principal,
    project: str,
    webhook_id: str,
    where: DeliveryFilter,
) -> tuple[list[Delivery], str | None]:
    """A page of deliveries, newest first, and the cursor of the next page."""
    await get(ws, uow, principal, project, webhook_id)
    page = await ws.store.deliveries(webhook_id, replace(where, limit=where.limit + 1))
    more = len(page) > where.limit
    page = page[: where.limit]
    return page, page[-1].id if more and page else None


async def get_delivery(
    ws: WebhookServices,
    uow: UnitOfWork,
    principal: Principal,
    project: str,
    webhook_id: str,
    delivery_id: str,
) -> tuple[Delivery, str]:
    await get(ws, uow, principal, project, webhook_id)
    found = await ws.store.delivery(webhook_id, delivery_id)
    if found is None:
        raise NotFound(f"delivery {delivery_id!r} not found", field="delivery")
    return found


async def redeliver(
    ws: WebhookServices,
    uow: UnitOfWork,
    principal: Principal,
    project: str,
    webhook_id: str,
    delivery_id: str,
) -> str:
    """Send the same event again as a new delivery; returns its id."""
    require_scope(principal, Scope.WEBHOOKS_WRITE)
    original, payload = await get_delivery(ws, uow, principal, project, webhook_id, delivery_id)
    ref = EventRef(original.event_id, original.event_type, original.stream, original.seq)
    new = _new_delivery(original.webhook_id, project, ref, payload, "redeliver", ws.clock())
    await ws.store.add_deliveries([new])
    return new.id


def _new_delivery(
    webhook_id: str, project: str, source: EventRef, payload: str, why: str, now: datetime
) -> NewDelivery:
    did = new_delivery_id()
    return NewDelivery(
        id=did,
        webhook_id=webhook_id,
        project=project,
        event_id=source.event_id,
        event_type=source.event_type,
        stream=source.stream,
        seq=source.seq,
        dedup_key=f"{webhook_id}:{source.event_id}:{why}:{did[4:]}",
        payload=payload,
        created_at=now,
    )


def parse_since(value: str) -> tuple[int | None, datetime | None]:
    """A stream sequence (`1234`) or an ISO 8601 time with a zone."""
    if re.fullmatch(r"[0-9]{1,25}", value):
        if int(value) > MAX_SEQUENCE:
            raise ValidationFailed(f"since must be at most {MAX_SEQUENCE}", field="since")
        return int(value), None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValidationFailed(
            "since must be a stream sequence or an ISO 8601 time", field="since"
        ) from exc
    if when.tzinfo is None:
        raise ValidationFailed("since must include a time zone (e.g. Z)", field="since")
    try:
        return None, when.astimezone(UTC)
    except OverflowError as exc:
        raise ValidationFailed("since is out of range", field="since") from exc


async def replay(
    ws: WebhookServices,
    uow: UnitOfWork,
    principal: Principal,
    project: str,
    webhook_id: str,
    since: str,
    limit: int = MAX_REPLAY,
) -> list[str]:
    """Deliver again every matching lifecycle event from `since` on; returns the delivery ids."""
    require_scope(principal, Scope.WEBHOOKS_WRITE)
    webhook = await get(ws, uow, principal, project, webhook_id)
    seq, time = parse_since(since)
    events = await ws.lifecycle.since(project, seq=seq, time=time, limit=min(limit, MAX_REPLAY))
    now = ws.clock()
    deliveries = []
    for logged in events:
        event = CloudEvent.from_bytes(logged.data)
        if webhook_rules.matches(webhook.events, event.type):
            source = EventRef(event.id, event.type, logged.stream, logged.seq)
            deliveries.append(
                _new_delivery(webhook.id, project, source, logged.data.decode(), "replay", now)
            )
    if deliveries:
        await ws.store.add_deliveries(deliveries)
    return [d.id for d in deliveries]
