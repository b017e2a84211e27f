"""The webhook delivery's rules, with no I/O: may an attempt be made, what its result
makes of the delivery, what it does to the endpoint's health."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rdev_webhooks.domain.delivery import (
    DELETED,
    GONE,
    Health,
    Next,
    Target,
    after_attempt,
    health_after,
    status_after,
    stop_reason,
)
from rdev_webhooks.domain.model import AttemptResult, DeliveryStatus
from rdev_webhooks.domain.schedule import RetrySchedule

NOW = datetime(2026, 1, 1, tzinfo=UTC)
OK = AttemptResult(status_code=204, duration_ms=3)
REFUSED = AttemptResult(status_code=None, duration_ms=3, error="refused")
BUSY = AttemptResult(status_code=503, duration_ms=3, retry_after_s=120)
GONE_410 = AttemptResult(status_code=410, duration_ms=3)
SCHEDULE = RetrySchedule((0.0, 5.0, 60.0), jitter=0.0)


@pytest.mark.parametrize(
    ("target", "attempt", "why"),
    [
        (Target(exists=True, enabled=True), 1, None),
        (Target(exists=True, enabled=True), 3, None),
        (Target(exists=True, enabled=True), 4, "no attempt left after 3"),
        (Target(exists=False, enabled=False), 1, DELETED),
        (Target(exists=True, enabled=False), 1, "the webhook is disabled: by request"),
        (
            Target(exists=True, enabled=False, disabled_reason=GONE),
            2,
            f"the webhook is disabled: {GONE}",
        ),
    ],
)
def test_an_attempt_is_made_only_to_an_enabled_endpoint_with_attempts_left(
    target: Target, attempt: int, why: str | None
) -> None:
    assert stop_reason(target, attempt, SCHEDULE.max_attempts) == why


def test_a_success_ends_the_delivery() -> None:
    assert after_attempt(OK, 1, SCHEDULE, NOW) == Next(DeliveryStatus.SUCCEEDED)


def test_a_failure_with_attempts_left_is_due_after_the_schedules_delay() -> None:
    assert after_attempt(REFUSED, 1, SCHEDULE, NOW) == Next(
        DeliveryStatus.PENDING, 5.0, NOW + timedelta(seconds=5)
    )


def test_retry_after_pushes_the_next_attempt_back() -> None:
    after = after_attempt(BUSY, 1, SCHEDULE, NOW)
    assert after.status is DeliveryStatus.PENDING and after.delay_s == 120


def test_the_last_failure_and_410_gone_fail_the_delivery() -> None:
    assert after_attempt(REFUSED, 3, SCHEDULE, NOW) == Next(DeliveryStatus.FAILED)
    assert after_attempt(GONE_410, 1, SCHEDULE, NOW) == Next(DeliveryStatus.FAILED)


def test_the_status_recorded_follows_the_next_attempt() -> None:
    assert status_after(OK, None) is DeliveryStatus.SUCCEEDED
    assert status_after(REFUSED, NOW) is DeliveryStatus.PENDING
    assert status_after(REFUSED, None) is DeliveryStatus.FAILED


def test_a_first_failure_starts_a_streak_and_a_success_ends_it() -> None:
    change = health_after(Health(None, enabled=True), REFUSED, NOW, disable_after_s=3600)
    assert change.start_streak and change.failing_since == NOW and change.disable is None
    assert health_after(Health(NOW, True), OK, NOW, 3600).failing_since is None


def test_a_streak_as_long_as_the_disable_period_disables() -> None:
    since = NOW - timedelta(hours=2)
    change = health_after(Health(since, enabled=True), REFUSED, NOW, disable_after_s=3600)
    assert not change.start_streak
    assert change.disable == f"failing continuously since {since.isoformat()}"
    shorter = health_after(Health(since, enabled=True), REFUSED, NOW, disable_after_s=7201)
    assert shorter.disable is None


def test_410_gone_disables_at_once_but_a_disabled_endpoint_is_not_disabled_again() -> None:
    assert health_after(Health(None, True), GONE_410, NOW, 3600).disable == GONE
    assert health_after(Health(None, False), GONE_410, NOW, 3600).disable is None
