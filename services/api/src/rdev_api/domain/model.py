"""Domain objects of the api: projects, API keys, principals. Standard library only."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from rdev_api.domain.ratelimit import RateLimitPolicy


class Scope(StrEnum):
    ADMIN = "admin"
    PROJECTS_WRITE = "projects:write"
    COMMANDS_EXECUTE = "commands:execute"
    COMMANDS_READ = "commands:read"
    WEBHOOKS_WRITE = "webhooks:write"
    AUDIT_READ = "audit:read"


@dataclass
class Project:
    id: str
    workdir: str | None
    created_at: datetime
    updated_at: datetime
    kubernetes: dict[str, Any] | None = None
    env: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    max_concurrency: int | None = None
    default_timeout_s: float | None = None
    command_policy: dict[str, Any] = field(default_factory=dict)

    @property
    def secret_names(self) -> list[str]:
        return sorted(self.secrets)


@dataclass
class ApiKey:
    id: str
    name: str
    secret_hash: str
    prefix: str
    scopes: frozenset[Scope]
    created_at: datetime
    projects: frozenset[str] | None = None
    allowed_ips: tuple[str, ...] | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    previous_secret_hash: str | None = None
    previous_expires_at: datetime | None = None
    rate_limits: dict[str, RateLimitPolicy] = field(default_factory=dict)

    def is_active(self, now: datetime) -> bool:
        if self.revoked_at is not None and self.revoked_at <= now:
            return False
        return self.expires_at is None or self.expires_at > now

    def previous_valid(self, now: datetime) -> bool:
        """True while the secret replaced by the last rotation is still accepted."""
        return (
            self.previous_secret_hash is not None
            and self.previous_expires_at is not None
            and self.previous_expires_at > now
        )

    def accepts(self, secret_hash: str, now: datetime) -> str | None:
        """Which secret `secret_hash` is ("current" or "previous"), if it is still accepted."""
        if secret_hash == self.secret_hash:
            return "current"
        if secret_hash == self.previous_secret_hash and self.previous_valid(now):
            return "previous"
        return None

    def has_scope(self, scope: Scope) -> bool:
        return Scope.ADMIN in self.scopes or scope in self.scopes

    def may_see(self, project_id: str) -> bool:
        return self.projects is None or project_id in self.projects


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key, and where from."""

    key: ApiKey
    client_ip: str | None
    # Authenticated with the secret a rotation replaced: valid only during the grace period.
    via_previous: bool = False
    # Authenticated with a browser session cookie, not a secret: rotation does not end it.
    via_session: bool = False
