"""Settings every service shares; each service subclasses with its own few."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from rdev_common.sealing import Sealer


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
    # Seals project secrets in the broker (see rdev_common.sealing); only the api and the
    # executors need it. `rdev up` makes one in the data dir when it is not set.
    secrets_key: SecretStr | None = None
    # This service's own broker identity (see rdev_common.nats_auth); `rdev up`, compose
    # and the Kubernetes manifests set them. Unset: connect without credentials.
    nats_user: str | None = None
    nats_password: SecretStr | None = None

    @field_validator("nats_url")
    @classmethod
    def _nats_servers(cls, value: str | None) -> str | None:
        """One URL or a comma-separated list of them (the NATS convention, to seed a
        cluster without a load balancer); kept as given, checked here so a typo stops
        the process with a message naming the setting."""
        if value is None or not value.strip():
            return None
        from rdev_common.broker import server_list

        server_list(value)
        return value

    def secrets_sealer(self) -> Sealer | None:
        """The sealer of RDEV_SECRETS_KEY, None when unset. A malformed key ends the process
        with a message that names the setting but not its value."""
        from rdev_common.sealing import Sealer

        try:
            return Sealer.from_setting(
                self.secrets_key.get_secret_value() if self.secrets_key else None
            )
        except ValueError as exc:
            raise SystemExit(str(exc)) from None

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir.resolve() / 'rdev.db'}"

    def nats_credentials(self) -> dict[str, str]:
        """Keyword arguments of `rdev_common.broker.connect` for this identity."""
        if not self.nats_user:
            return {}
        password = self.nats_password.get_secret_value() if self.nats_password else ""
        return {"user": self.nats_user, "password": password}

    def require_nats_url(self) -> str:
        """RDEV_NATS_URL as given: one server or a comma-separated list;
        `rdev_common.broker.connect` takes either."""
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
