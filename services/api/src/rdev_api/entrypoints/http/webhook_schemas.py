"""HTTP bodies of the webhook endpoints."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from rdev_api.domain.webhooks import Attempt, Delivery, Webhook
from rdev_api.entrypoints.http.bounds import Grace


class WebhookCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"url": "https://ci.example.com/rdev", "events": ["command.completed"]}]
        },
    )
    url: str = Field(
        pattern="^https?://[^\\s/]",
        max_length=2048,
        description="http(s) URL the events are POSTed to",
    )
    events: list[str] = Field(min_length=1, description="event types, `*` wildcards: ['command.*']")
    description: str | None = Field(default=None, max_length=500)


class WebhookPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"enabled": False}]})
    url: str | None = None
    events: list[str] | None = None
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = None


class RotateSecret(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"overlap_s": 86400}]}
    )
    overlap_s: Grace = Field(
        default=86400.0, description="how long the previous secret keeps signing too"
    )


class WebhookOut(BaseModel):
    id: str
    project: str
    url: str
    events: list[str]
    description: str | None
    enabled: bool
    disabled_reason: str | None
    failing_since: datetime | None
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, w: Webhook) -> WebhookOut:
        return cls(
            id=w.id,
            project=w.project,
            url=w.url,
            events=w.events,
            description=w.description,
            enabled=w.enabled,
            disabled_reason=w.disabled_reason,
            failing_since=w.failing_since,
            previous_secret_expires_at=w.previous_secret_expires_at,
            created_at=w.created_at,
            updated_at=w.updated_at,
        )


class WebhookWithSecret(WebhookOut):
    secret: str = Field(description="whsec_…: shown only now; verify signatures with it")

    @classmethod
    def with_secret(cls, w: Webhook) -> WebhookWithSecret:
        return cls(**WebhookOut.of(w).model_dump(), secret=w.secret)


class AttemptOut(BaseModel):
    n: int
    outcome: str
    status_code: int | None
    duration_ms: int | None
    response_body: str | None
    error: str | None
    started_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, a: Attempt) -> AttemptOut:
        return cls(**{k: getattr(a, k) for k in cls.model_fields})


class DeliveryOut(BaseModel):
    id: str = Field(description="the webhook-id header, the same on every attempt")
    webhook_id: str
    event_id: str
    event_type: str
    stream: str
    seq: int
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, d: Delivery) -> DeliveryOut:
        return cls(**{k: getattr(d, k) for k in cls.model_fields})


class DeliveryDetail(DeliveryOut):
    history: list[AttemptOut]
    payload: str

    @classmethod
    def detail(cls, d: Delivery, payload: str) -> DeliveryDetail:
        base = DeliveryOut.of(d).model_dump()
        return cls(**base, history=[AttemptOut.of(a) for a in d.history], payload=payload)


class Replayed(BaseModel):
    deliveries: list[str]
