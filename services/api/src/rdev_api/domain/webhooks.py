"""Webhook registrations, deliveries and attempts as the api shows them. Standard library only."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class Webhook:
    id: str
    project: str
    url: str
    events: list[str]
    enabled: bool
    secret: str
    created_at: datetime
    updated_at: datetime
    description: str | None = None
    previous_secret: str | None = None
    previous_secret_expires_at: datetime | None = None
    disabled_reason: str | None = None
    failing_since: datetime | None = None


@dataclass(frozen=True)
class Attempt:
    n: int
    outcome: str
    started_at: datetime
    status_code: int | None = None
    duration_ms: int | None = None
    response_body: str | None = None
    error: str | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True)
class Delivery:
    id: str
    webhook_id: str
    project: str
    event_id: str
    event_type: str
    stream: str
    seq: int
    status: str
    attempts: int
    created_at: datetime
    updated_at: datetime
    next_attempt_at: datetime | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    history: list[Attempt] = field(default_factory=list)


@dataclass(frozen=True)
class NewDelivery:
    """A delivery the api asks for (redeliver, replay); the webhooks service sends it."""

    id: str
    webhook_id: str
    project: str
    event_id: str
    event_type: str
    stream: str
    seq: int
    dedup_key: str
    payload: str
    created_at: datetime


@dataclass(frozen=True)
class DeliveryFilter:
    status: str | None = None
    event_type: str | None = None
    event_id: str | None = None
    before_id: str | None = None  # the cursor: deliveries older than this one
    limit: int = 50


@dataclass(frozen=True)
class EventRef:
    """Which logged event a delivery carries."""

    event_id: str
    event_type: str
    stream: str
    seq: int
