"""Settings of the webhooks service."""

from __future__ import annotations

from pydantic import Field, field_validator

from rdev_common.settings import HealthSettings
from rdev_webhooks.domain.schedule import DEFAULT_SCHEDULE, parse_schedule


class WebhooksSettings(HealthSettings):
    webhooks_allow_private_targets: bool = False
    webhooks_retry_schedule: str = ",".join(f"{d:g}" for d in DEFAULT_SCHEDULE)
    webhooks_timeout_s: float = Field(default=15.0, gt=0)
    webhooks_endpoint_concurrency: int = Field(default=4, ge=1, le=64)
    webhooks_breaker_failures: int = Field(default=5, ge=1)
    webhooks_breaker_cooldown_s: float = Field(default=30.0, gt=0)
    # An endpoint failing without a single success for this long is disabled.
    webhooks_disable_after_s: float = Field(default=5 * 86400.0, gt=0)
    webhooks_poll_interval_s: float = Field(default=0.25, gt=0)
    # Lifecycle events are recorded in batches: one endpoints query and one transaction
    # for up to this many events.
    webhooks_ingest_batch: int = Field(default=200, ge=1, le=1000)
    # After a batch's first event, how long to let the rest of a burst arrive (a run's
    # requested, started and completed come milliseconds apart). Adds at most this much
    # to a delivery's latency.
    webhooks_ingest_linger_s: float = Field(default=0.02, ge=0, le=0.1)

    @field_validator("webhooks_retry_schedule")
    @classmethod
    def _valid_schedule(cls, value: str) -> str:
        parse_schedule(value)
        return value

    def retry_delays(self) -> tuple[float, ...]:
        return parse_schedule(self.webhooks_retry_schedule)
