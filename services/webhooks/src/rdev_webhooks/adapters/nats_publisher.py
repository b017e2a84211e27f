"""Publishes the dispatcher's own events on RDEV_WEBHOOKS."""

from __future__ import annotations

from nats.js import JetStreamContext

from rdev_common import subjects
from rdev_common.events import CloudEvent, EventData
from rdev_common.webhook_events import SOURCE


class NatsWebhookEventPublisher:
    def __init__(self, js: JetStreamContext) -> None:
        self.js = js

    async def publish(self, webhook_id: str, kind: str, event: EventData, msg_id: str) -> None:
        project = getattr(event, "project", None)
        envelope = CloudEvent.wrap(event, source=SOURCE, subject=webhook_id, project=project)
        await self.js.publish(
            subjects.webhook(webhook_id, kind),
            envelope.to_bytes(),
            headers={"Nats-Msg-Id": msg_id},
        )
