"""Settings of the api service."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from rdev_common.settings import CommonSettings


class ApiSettings(CommonSettings):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    bootstrap_key: SecretStr | None = None
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    heartbeat_s: float = Field(default=15.0, gt=0)
    # How often a watched queued run's position is checked and, if it moved, published.
    queue_announce_s: float = Field(default=1.0, gt=0)
    sse_send_timeout_s: float = Field(default=60.0, gt=0)
    max_timeout_s: float = Field(default=24 * 3600.0, gt=0)
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    cookie_secure: bool = False
    # identity and access (docs/security.md)
    rate_limit_enabled: bool = True
    rate_limit_requests: int = Field(default=600, gt=0)
    rate_limit_window_s: int = Field(default=60, gt=0, le=3600)
    rate_limit_submit: int = Field(default=60, gt=0)
    rate_limit_submit_window_s: int = Field(default=60, gt=0, le=3600)
    rate_limit_auth_failures: int = Field(default=20, gt=0)
    rate_limit_auth_failures_window_s: int = Field(default=60, gt=0, le=3600)
    key_rotation_grace_s: float = Field(default=3600.0, ge=0, le=7 * 86400)
    last_used_flush_s: float = Field(default=30.0, gt=0)
    identity_cache_ttl_s: float = Field(default=30.0, gt=0)
    # How much longer a cached key or project is used while the database is unreachable.
    identity_cache_stale_s: float = Field(default=900.0, ge=0)
    outbox_relay_enabled: bool = True
    outbox_poll_s: float = Field(default=0.5, gt=0)
    outbox_keep_s: float = Field(default=86400.0, ge=0)
    stream_auth_check_s: float = Field(default=1.0, gt=0)
    # webhook registrations (the webhooks service reads the same variable for delivery)
    webhooks_allow_private_targets: bool = False

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value
