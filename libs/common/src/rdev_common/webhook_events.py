"""Events about webhooks: admin changes (RDEV_ADMIN) and delivery history (RDEV_WEBHOOKS).

Subjects: `rdev.admin.webhook.<action>` and `rdev.webhooks.<webhook_id>.<kind>`
with kind `attempt`, `disabled` or `enabled`. Secrets never appear in events.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from rdev_common.events import EventData

SOURCE = "rdev/webhooks"


class WebhookSnapshot(EventData):
    """A registration after an admin change, without its secret."""

    webhook_id: str
    project: str
    url: str
    events: list[str]
    enabled: bool
    actor: str | None = None


class WebhookCreated(WebhookSnapshot):
    kind = "webhook.created"


class WebhookUpdated(WebhookSnapshot):
    kind = "webhook.updated"


class WebhookDeleted(WebhookSnapshot):
    kind = "webhook.deleted"


class WebhookRotated(WebhookSnapshot):
    """The secret was replaced; the previous one signs too until `previous_valid_until`."""

    kind = "webhook.rotated"
    previous_valid_until: datetime | None = None


ADMIN_ACTIONS: dict[str, type[WebhookSnapshot]] = {
    m.kind.split(".", 1)[1]: m
    for m in (WebhookCreated, WebhookUpdated, WebhookDeleted, WebhookRotated)
}


class DeliveryAttempted(EventData):
    """One HTTP request of a delivery and its outcome."""

    kind = "webhook.attempt"
    webhook_id: str
    delivery_id: str
    event_id: str
    event_kind: str  # the CloudEvents type of the delivered event
    attempt: int
    outcome: Literal["succeeded", "failed", "interrupted"]
    status_code: int | None = None
    duration_ms: int | None = None
    error: str | None = None
    next_attempt_in_s: float | None = None


class WebhookDisabled(EventData):
    kind = "webhook.disabled"
    webhook_id: str
    project: str
    reason: str


_ALL: tuple[type[EventData], ...] = (*ADMIN_ACTIONS.values(), DeliveryAttempted, WebhookDisabled)
WEBHOOK_EVENT_TYPES: dict[str, type[EventData]] = {m.event_type(): m for m in _ALL}
