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
    sse_send_timeout_s: float = Field(default=60.0, gt=0)
    max_timeout_s: float = Field(default=24 * 3600.0, gt=0)
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    cookie_secure: bool = False

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value
