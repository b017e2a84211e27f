"""Ports of the webhooks service: its tables (with their outbox) and the HTTP sender."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from rdev_common.webhook_events import DeliveryAttempted
from rdev_webhooks.domain.model import AttemptResult, Claim, Delivery, Endpoint, NewDelivery


@dataclass(frozen=True)
class Recorded:
    """What recording an attempt changed."""

    disabled_reason: str | None  # set when this attempt disabled the endpoint
    # The attempt was no longer `sending` (its lease ran out and it was closed as
    # interrupted): nothing was recorded.
    late: bool = False


class DeliveryStore(Protocol):
    """Registrations, deliveries and attempts; every method is one transaction."""

    async def enabled_endpoints(self, projects: Collection[str]) -> list[Endpoint]:
        """The enabled registrations of these projects as committed now: one query serves
        a whole batch of events, and none of them can miss an endpoint committed before."""
        ...

    async def add_deliveries(self, deliveries: list[NewDelivery]) -> int:
        """Record the deliveries whose `dedup_key` is new, in one transaction; how many."""
        ...

    async def due_endpoints(self, now: datetime) -> list[str]: ...
    async def due_deliveries(
        self, webhook_id: str, now: datetime, exclude: set[str], limit: int
    ) -> list[str]: ...
    async def defer(self, delivery_id: str, until: datetime) -> None: ...
    async def claim(
        self, delivery_id: str, now: datetime, lease_until: datetime, max_attempts: int
    ) -> Claim | None:
        """Own the next attempt of a due delivery: closes an attempt a crash left
        `sending` as interrupted (its `webhook.attempt` event into the outbox),
        records the new one as `sending`. None when the delivery is not due, is
        finished, or another worker owns it."""
        ...

    async def record(
        self,
        delivery: Delivery,
        attempt: int,
        result: AttemptResult,
        next_attempt_at: datetime | None,
        now: datetime,
        disable_after_s: float,
        event: DeliveryAttempted,
    ) -> Recorded:
        """Close the attempt with its result and write `event` to the outbox, at once."""
        ...


class Sender(Protocol):
    async def send(self, endpoint: Endpoint, delivery: Delivery, attempt: int) -> AttemptResult: ...


class Clock(Protocol):
    def __call__(self) -> datetime: ...
