"""A delivery's rules, with no I/O: whether its next attempt may be made, what an
attempt's result makes of it, and what the result does to its endpoint's health.

    pending ──claim──▶ attempt n `sending` ──result──▶ succeeded
       ▲                                        ├────▶ pending (a retry is left: due then)
       └────────────────────────────────────────┘────▶ failed (none left, or 410 Gone)
    pending ──claim, but the endpoint is gone, disabled, or no attempt is left──▶ failed

An endpoint's health: its first failure starts a streak (`failing_since`), a success
ends it; 410 Gone, or a streak longer than the disable period, disables it and is
announced (`webhook.disabled`). The repository loads what these functions need and
saves what they decide, each in one transaction with compare-and-set.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from rdev_webhooks.domain.model import AttemptResult, DeliveryStatus
from rdev_webhooks.domain.schedule import RetrySchedule

DELETED = "the webhook was deleted"
GONE = "the endpoint answered 410 Gone"


@dataclass(frozen=True)
class Target:
    """What a claim knows of the delivery's endpoint: None fields when it was deleted."""

    exists: bool
    enabled: bool
    disabled_reason: str | None = None


def stop_reason(target: Target, attempt: int, max_attempts: int) -> str | None:
    """Why attempt `attempt` (1-based) must not be made; None when it may."""
    if not target.exists:
        return DELETED
    if not target.enabled:
        return f"the webhook is disabled: {target.disabled_reason or 'by request'}"
    if attempt > max_attempts:
        return f"no attempt left after {max_attempts}"
    return None


@dataclass(frozen=True)
class Next:
    """The delivery after an attempt: its status, and when it is due again if pending."""

    status: DeliveryStatus
    delay_s: float | None = None
    at: datetime | None = None


def after_attempt(
    result: AttemptResult,
    attempt: int,
    schedule: RetrySchedule,
    now: datetime,
    rand: Callable[[], float] = random.random,
) -> Next:
    """Succeeded; pending with the schedule's next delay (Retry-After honoured); or
    failed when no attempt is left or the receiver answered 410 Gone."""
    if result.succeeded:
        return Next(DeliveryStatus.SUCCEEDED)
    delay = None if result.gone else schedule.delay_after(attempt, result.retry_after_s, rand)
    if delay is None:
        return Next(DeliveryStatus.FAILED)
    return Next(DeliveryStatus.PENDING, delay, now + timedelta(seconds=delay))


def status_after(result: AttemptResult, next_attempt_at: datetime | None) -> DeliveryStatus:
    """The status a recorded result leaves: pending only while a next attempt is due."""
    if result.succeeded:
        return DeliveryStatus.SUCCEEDED
    return DeliveryStatus.PENDING if next_attempt_at is not None else DeliveryStatus.FAILED


@dataclass(frozen=True)
class Health:
    """An endpoint's failure streak, as stored."""

    failing_since: datetime | None
    enabled: bool


@dataclass(frozen=True)
class HealthChange:
    """What to save: the streak's start (when it changes) and, when the endpoint must be
    disabled, why (its `webhook.disabled` event goes with it)."""

    failing_since: datetime | None
    start_streak: bool = False
    disable: str | None = None


def health_after(
    health: Health, result: AttemptResult, now: datetime, disable_after_s: float
) -> HealthChange:
    """A success ends the streak; a failure starts one or lengthens it, and 410 Gone or a
    streak of `disable_after_s` disables an endpoint that is still enabled."""
    if result.succeeded:
        return HealthChange(failing_since=None)
    since = health.failing_since
    start = since is None
    if since is None:
        since = now
    reason = None
    if result.gone:
        reason = GONE
    elif (now - since).total_seconds() >= disable_after_s:
        reason = f"failing continuously since {since.isoformat()}"
    return HealthChange(since, start, reason if health.enabled else None)
