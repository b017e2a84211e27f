"""Settings of the webhooks service."""

from __future__ import annotations

from rdev_common.settings import HealthSettings


class WebhooksSettings(HealthSettings):
    pass
