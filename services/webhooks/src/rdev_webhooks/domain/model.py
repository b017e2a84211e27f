"""What the dispatcher works with. Standard library only."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Outcome(StrEnum):
    SENDING = "sending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class Endpoint:
    """A registration as the dispatcher needs it: where, and which secrets sign."""

    id: str
    project: str
    url: str
    events: list[str]
    secrets: list[str]
    enabled: bool


@dataclass(frozen=True)
class NewDelivery:
    id: str
    webhook_id: str
    project: str
    event_id: str
    event_type: str
    stream: str
    seq: int
    dedup_key: str
    payload: str
    next_attempt_at: datetime


@dataclass(frozen=True)
class Delivery:
    id: str
    webhook_id: str
    event_id: str
    event_type: str
    payload: str
    attempts: int


@dataclass(frozen=True)
class AttemptResult:
    """What one HTTP request came to."""

    status_code: int | None
    duration_ms: int
    response_body: str | None = None
    error: str | None = None
    retry_after_s: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        """410 Gone: the receiver asks never to be called again."""
        return self.status_code == 410


@dataclass(frozen=True)
class Claim:
    """An attempt this process now owns (recorded as `sending` before the request)."""

    delivery: Delivery
    endpoint: Endpoint
    attempt: int
    interrupted: list[int] = field(default_factory=list)
