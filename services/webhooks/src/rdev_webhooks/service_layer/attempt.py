"""One attempt of one delivery, recorded so a crash neither loses nor repeats it.

Order: claim (attempt n recorded as `sending`, delivery leased) → HTTP request →
result recorded, with its `webhook.attempt` event (and `webhook.disabled`, when the
result disables the endpoint) written to the outbox in the same transaction; the
outbox relay publishes them. The stream of attempt events therefore says what the
tables say, whatever fails in between.
A crash after the claim, or a database that refuses the result, leaves attempt n
`sending`; when the lease expires the next claim closes it as `interrupted` (its
event written with it) and moves on to n+1, so attempt n is never sent twice and
the delivery is never dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import structlog

from rdev_common.circuit_breaker import CircuitBreaker, CircuitOpen, State
from rdev_common.webhook_events import DeliveryAttempted
from rdev_webhooks.domain.delivery import after_attempt
from rdev_webhooks.domain.model import AttemptResult, Claim
from rdev_webhooks.domain.schedule import RetrySchedule
from rdev_webhooks.service_layer.ports import Clock, DeliveryStore, Sender

log = structlog.get_logger()

LEASE_MARGIN_S = 5.0


@dataclass(frozen=True)
class Policy:
    schedule: RetrySchedule
    timeout_s: float
    disable_after_s: float


@dataclass
class AttemptContext:
    store: DeliveryStore
    sender: Sender
    clock: Clock
    policy: Policy
    outbox_written: Callable[[], None] = lambda: None  # wakes the outbox relay


def _attempt_event(
    claim: Claim, outcome: str, result: AttemptResult, next_in: float | None
) -> DeliveryAttempted:
    return DeliveryAttempted(
        webhook_id=claim.delivery.webhook_id,
        delivery_id=claim.delivery.id,
        event_id=claim.delivery.event_id,
        event_kind=claim.delivery.event_type,
        attempt=claim.attempt,
        outcome=outcome,  # type: ignore[arg-type]
        status_code=result.status_code,
        duration_ms=result.duration_ms,
        error=result.error,
        next_attempt_in_s=next_in,
    )


async def run_attempt(ctx: AttemptContext, breaker: CircuitBreaker, delivery_id: str) -> None:
    now = ctx.clock()
    try:
        breaker.before_call()
    except CircuitOpen as exc:
        # No attempt is spent while the endpoint is known to be down: the probe decides.
        if breaker.state is State.HALF_OPEN:
            return  # a probe is in flight: stay due, its success releases the lane
        await ctx.store.defer(delivery_id, now + timedelta(seconds=max(exc.retry_after_s, 0.05)))
        return
    lease = now + timedelta(seconds=ctx.policy.timeout_s + LEASE_MARGIN_S)
    claim = await ctx.store.claim(delivery_id, now, lease, ctx.policy.schedule.max_attempts)
    if claim is None:
        breaker.record_cancelled()
        return
    if claim.interrupted:  # their events were written with the claim
        ctx.outbox_written()
    if claim.attempt == 0:  # finished while closing an interrupted attempt
        breaker.record_cancelled()
        return
    result = await ctx.sender.send(claim.endpoint, claim.delivery, claim.attempt)
    if result.succeeded:
        breaker.record_success()
    else:
        breaker.record_failure()
    await _finish(ctx, claim, result)


async def _finish(ctx: AttemptContext, claim: Claim, result: AttemptResult) -> None:
    now = ctx.clock()
    after = after_attempt(result, claim.attempt, ctx.policy.schedule, now)
    outcome = "succeeded" if result.succeeded else "failed"
    event = _attempt_event(claim, outcome, result, after.delay_s)
    recorded = await ctx.store.record(
        claim.delivery, claim.attempt, result, after.at, now, ctx.policy.disable_after_s, event
    )
    if recorded.late:
        log.warning(
            "attempt result came after its lease ran out; the attempt stays interrupted",
            webhook_id=claim.endpoint.id,
            delivery_id=claim.delivery.id,
            attempt=claim.attempt,
        )
        return
    ctx.outbox_written()
    log.info(
        "webhook attempt",
        webhook_id=claim.endpoint.id,
        delivery_id=claim.delivery.id,
        attempt=claim.attempt,
        outcome=outcome,
        status_code=result.status_code,
        duration_ms=result.duration_ms,
    )
    if recorded.disabled_reason is not None:
        log.warning(
            "webhook disabled", webhook_id=claim.endpoint.id, reason=recorded.disabled_reason
        )
