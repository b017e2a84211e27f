"""Settings every service shares; each service subclasses with its own few."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    """`RDEV_*` environment variables known to every service."""

    model_config = SettingsConfigDict(env_prefix="RDEV_", extra="ignore")

    data_dir: Path = Path(".rdev")
    nats_url: str | None = None
    database_url: str | None = None
    log_format: Literal["console", "json"] = "console"
    log_level: str = "info"
    stream_replicas: int = Field(default=1, ge=1, le=5)
    commands_max_age_s: float = Field(default=7 * 86400, gt=0)
    runs_max_age_s: float = Field(default=7 * 86400, gt=0)
    runs_max_bytes: int = Field(default=-1)
    admin_max_age_s: float = Field(default=365 * 86400, gt=0)
    dedup_window_s: float = Field(default=3600, gt=0)

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir.resolve() / 'rdev.db'}"

    def require_nats_url(self) -> str:
        if not self.nats_url:
            raise SystemExit(
                "RDEV_NATS_URL is not set: start the whole system with `rdev up`, "
                "or point this service at a NATS server with JetStream"
            )
        return self.nats_url


class HealthSettings(CommonSettings):
    """Services without a public API serve /healthz, /readyz and /metrics here."""

    health_host: str = "127.0.0.1"
    health_port: int = Field(default=0, ge=0, le=65535)
