"""Builds the webhook use cases' adapters; called from the api's lifespan."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from nats.js import JetStreamContext
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.ext.asyncio import async_sessionmaker

from rdev_api.adapters.nats_lifecycle_log import NatsLifecycleLog
from rdev_api.adapters.sqlalchemy_webhooks import SqlAlchemyWebhookStore
from rdev_api.service_layer.webhook_ports import WebhookServices


class WebhookApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RDEV_", extra="ignore")
    webhooks_allow_private_targets: bool = False


def webhook_services(
    js: JetStreamContext, sessions: async_sessionmaker[Any], clock: Callable[[], datetime]
) -> WebhookServices:
    return WebhookServices(
        store=SqlAlchemyWebhookStore(sessions),
        lifecycle=NatsLifecycleLog(js),
        clock=clock,
        allow_private_targets=WebhookApiSettings().webhooks_allow_private_targets,
    )
