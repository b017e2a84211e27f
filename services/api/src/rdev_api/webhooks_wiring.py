"""Builds the webhook use cases' adapters; called from the api's lifespan."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import async_sessionmaker

from rdev_api.adapters.nats_lifecycle_log import NatsLifecycleLog
from rdev_api.adapters.sqlalchemy_webhooks import SqlAlchemyWebhookStore
from rdev_api.service_layer.webhook_ports import WebhookServices


def webhook_services(
    js: JetStreamContext,
    sessions: async_sessionmaker[Any],
    clock: Callable[[], datetime],
    allow_private_targets: bool,
) -> WebhookServices:
    return WebhookServices(
        store=SqlAlchemyWebhookStore(sessions),
        lifecycle=NatsLifecycleLog(js),
        clock=clock,
        allow_private_targets=allow_private_targets,
    )
