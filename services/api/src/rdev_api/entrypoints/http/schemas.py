"""HTTP request and response bodies. Separate from domain objects and ORM rows."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from rdev_api.domain.model import ApiKey, Project, Scope
from rdev_api.entrypoints.http.bounds import (
    Count,
    EnvChanges,
    EnvMap,
    EnvName,
    Grace,
    Moment,
    Timeout,
)
from rdev_api.entrypoints.http.ids import SLUG_PATTERN
from rdev_api.service_layer.ports import CommandState
from rdev_common import run_state
from rdev_common.events import Priority, TtySize

T = TypeVar("T")


class Envelope(BaseModel, Generic[T]):
    data: T


class ListEnvelope(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None = None


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ShellRequest(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"command": "make test", "timeout_s": 600, "env": {"CI": "1"}, "cwd": "app"}
            ]
        },
    )
    command: str = Field(
        min_length=1,
        max_length=65536,
        pattern=r"\S",
        description="run by /bin/sh -c in the project's workdir; not blank",
    )
    priority: Priority = Priority.NORMAL
    timeout_s: Timeout | None = Field(
        default=None,
        description="seconds, 1 to the server's maximum (at most 604800); "
        "null: the project's default",
    )
    env: EnvMap = Field(default_factory=dict)
    cwd: str | None = Field(default=None, description="relative to the workdir")
    stdin: bool = Field(
        default=False,
        description="keep the run's stdin open for PUT /commands/{id}/stdin (closed by default)",
    )
    tty: TtySize | None = Field(
        default=None, description="run in a pseudo-terminal of this size (implies stdin)"
    )


class CommandOut(BaseModel):
    id: str
    project: str
    command: str
    priority: Priority
    status: str = Field(description="lifecycle: queued, running or completed")
    state: str = Field(
        description="how the run stands: queued, running, succeeded, failed, timed_out, "
        "cancelled or lost"
    )
    state_label: str = Field(description="the state in words, e.g. `failed (exit 3)`")
    timeout_s: float | None
    requested_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    exit_code: int | None
    reason: str | None
    duration_ms: int | None
    error: str | None
    stdin: bool = False
    tty: TtySize | None = None
    links: dict[str, str]

    @classmethod
    def of(cls, state: CommandState) -> CommandOut:
        fields: dict[str, Any] = {
            k: getattr(state, k)
            for k in (
                "id",
                "project",
                "command",
                "priority",
                "status",
                "timeout_s",
                "requested_at",
                "started_at",
                "completed_at",
                "exit_code",
                "reason",
                "duration_ms",
                "error",
                "stdin",
                "tty",
            )
        }
        fields["state"] = run_state.state_of(state.status, state.reason, state.exit_code)
        fields["state_label"] = run_state.label(fields["state"], state.reason, state.exit_code)
        links = {
            "self": f"/commands/{state.id}",
            "rerun": f"/commands/{state.id}/rerun",
            "events": f"/projects/{state.project}/events?stream_id={state.id}",
            "cancel": f"/commands/{state.id}/cancel",
        }
        return cls(**fields, links=links)


class SessionCreate(Strict):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"api_key": "rdev_…"}]}
    )
    api_key: str


# Identity and access: projects (full) and API keys.


class CommandPolicyIn(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"allow": ["make *", "npm *"], "deny": ["re:rm\\s+-rf\\s+/"], "allow_env": []}
            ]
        },
    )
    allow: list[str] = Field(default_factory=list, description="globs, or `re:<regex>`")
    deny: list[str] = Field(default_factory=list, description="globs, or `re:<regex>`")
    allow_env: list[EnvName] = Field(
        default_factory=list,
        description="reserved variables (PATH, HOME, LD_*, …) this project's commands "
        "and env may set; none by default",
    )


class ProjectFields(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"env": {"NODE_ENV": "test"}, "default_timeout_s": 900}]},
    )
    workdir: str | None = Field(
        default=None,
        description="absolute path of a directory on the executors (checked when a command runs)",
    )
    kubernetes: dict[str, Any] | None = Field(default=None, description="workspace pod spec")
    env: EnvChanges | None = Field(
        default=None, description="merged into the current variables; null removes one"
    )
    secrets: EnvChanges | None = Field(
        default=None, description="write-only; merged like env; never returned"
    )
    max_concurrency: Annotated[int, Field(strict=True, ge=1, le=1000)] | None = None
    default_timeout_s: Timeout | None = None
    command_policy: CommandPolicyIn | None = None


class ProjectCreateFull(ProjectFields):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"id": "demo", "workdir": "/srv/demo", "max_concurrency": 2}],
            # a project runs somewhere: a workdir on the executor's host, or a pod
            "anyOf": [
                {"required": ["workdir"], "properties": {"workdir": {"type": "string"}}},
                {"required": ["kubernetes"], "properties": {"kubernetes": {"type": "object"}}},
            ],
        }
    )
    id: str = Field(pattern=SLUG_PATTERN, max_length=63, description="slug: a-z, 0-9 and '-'")


class ProjectView(BaseModel):
    """A project as the API shows it: secret names, never their values."""

    id: str
    workdir: str | None
    kubernetes: dict[str, Any] | None
    env: dict[str, str]
    secret_names: list[str]
    max_concurrency: int | None
    default_timeout_s: float | None
    command_policy: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, project: Project) -> ProjectView:
        return cls(
            id=project.id,
            workdir=project.workdir,
            kubernetes=project.kubernetes,
            env=project.env,
            secret_names=project.secret_names,
            max_concurrency=project.max_concurrency,
            default_timeout_s=project.default_timeout_s,
            command_policy={
                "allow": list(project.command_policy.get("allow") or []),
                "deny": list(project.command_policy.get("deny") or []),
                "allow_env": list(project.command_policy.get("allow_env") or []),
            },
            created_at=project.created_at,
            updated_at=project.updated_at,
        )


class RateLimitIn(Strict):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"limit": 600, "window_s": 60}]}
    )
    limit: Count
    window_s: Annotated[int, Field(strict=True, ge=1, le=3600)]


class ApiKeyCreate(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "ci",
                    "scopes": ["commands:execute", "commands:read"],
                    "projects": ["demo"],
                }
            ]
        },
    )
    name: str = Field(min_length=1, max_length=200, pattern=r"\S")
    scopes: list[Scope] = Field(min_length=1, description="what the key may do")
    projects: list[str] | None = Field(default=None, description="null: every project")
    allowed_ips: list[str] | None = Field(default=None, description="CIDRs; null: anywhere")
    expires_at: Moment | None = None
    rate_limits: dict[str, RateLimitIn] | None = Field(
        default=None, description="`requests` and/or `submit`; defaults apply otherwise"
    )


class ApiKeyUpdate(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"allowed_ips": ["10.0.0.0/8"], "expires_at": "2027-01-01T00:00:00Z"}]
        },
    )
    name: str | None = Field(default=None, min_length=1, max_length=200, pattern=r"\S")
    allowed_ips: list[str] | None = Field(default=None, description="CIDRs; null: anywhere")
    expires_at: Moment | None = None
    rate_limits: dict[str, RateLimitIn] | None = None


class ApiKeyRotate(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"grace_s": 3600}]})
    grace_s: Grace | None = Field(
        default=None, description="how long the old secret keeps working (default 3600)"
    )


class ApiKeyView(BaseModel):
    """A key as the API shows it: never its secret or hash."""

    id: str
    name: str
    prefix: str
    scopes: list[str]
    projects: list[str] | None
    allowed_ips: list[str] | None
    expires_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime
    last_used_at: datetime | None
    previous_secret_valid_until: datetime | None
    rate_limits: dict[str, dict[str, int]]

    @classmethod
    def of(cls, key: ApiKey, last_used: datetime | None = None) -> ApiKeyView:
        used = max((t for t in (key.last_used_at, last_used) if t is not None), default=None)
        return cls(
            id=key.id,
            name=key.name,
            prefix=key.prefix,
            scopes=sorted(s.value for s in key.scopes),
            projects=sorted(key.projects) if key.projects is not None else None,
            allowed_ips=list(key.allowed_ips) if key.allowed_ips is not None else None,
            expires_at=key.expires_at,
            revoked_at=key.revoked_at,
            created_at=key.created_at,
            last_used_at=used,
            previous_secret_valid_until=key.previous_expires_at
            if key.previous_secret_hash
            else None,
            rate_limits={
                p.name: {"limit": p.limit, "window_s": p.window_s} for p in key.rate_limits.values()
            },
        )


class ApiKeyWithSecret(ApiKeyView):
    secret: str = Field(description="shown once: store it now, rdev keeps only a hash")
