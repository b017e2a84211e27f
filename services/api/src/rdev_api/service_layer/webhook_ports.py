"""Ports of the webhook use cases: registrations and deliveries in SQL, events to replay."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from rdev_api.domain.webhooks import Delivery, DeliveryFilter, NewDelivery, Webhook
from rdev_common.events import CloudEvent


class WebhookStore(Protocol):
    """Each method is one transaction; admin events go to the outbox in the same one."""

    async def add(self, webhook: Webhook, event: CloudEvent) -> None: ...
    async def get(self, project: str, webhook_id: str) -> Webhook | None: ...
    async def of_project(self, project: str) -> list[Webhook]: ...
    async def save(self, webhook: Webhook, event: CloudEvent) -> None: ...
    async def delete(self, webhook: Webhook, event: CloudEvent) -> None: ...
    async def deliveries(self, webhook_id: str, where: DeliveryFilter) -> list[Delivery]: ...
    async def delivery(self, webhook_id: str, delivery_id: str) -> tuple[Delivery, str] | None:
        """The delivery with its attempts, and the CloudEvent body it sends."""
        ...

    async def add_deliveries(self, deliveries: list[NewDelivery]) -> int: ...


@dataclass(frozen=True)
class LoggedEvent:
    stream: str
    seq: int
    data: bytes


class LifecycleLog(Protocol):
    async def since(
        self, project: str, *, seq: int | None, time: datetime | None, limit: int
    ) -> list[LoggedEvent]:
        """A project's lifecycle events from a stream sequence or a time on, in order."""
        ...


@dataclass
class WebhookServices:
    store: WebhookStore
    lifecycle: LifecycleLog
    clock: Callable[[], datetime]
    allow_private_targets: bool
