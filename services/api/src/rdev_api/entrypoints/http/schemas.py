"""HTTP request and response bodies. Separate from domain objects and ORM rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from rdev_api.domain.model import Project
from rdev_api.service_layer.ports import CommandState
from rdev_common.events import Priority

T = TypeVar("T")


class Envelope(BaseModel, Generic[T]):
    data: T


class ListEnvelope(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None = None


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProjectCreate(Strict):
    id: str = Field(description="slug: a-z, 0-9 and '-'")
    workdir: str = Field(description="absolute path of an existing directory")
    env: dict[str, str] = Field(default_factory=dict)


class ProjectOut(BaseModel):
    id: str
    workdir: str | None
    env: dict[str, str]
    max_concurrency: int | None
    default_timeout_s: float | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, project: Project) -> ProjectOut:
        return cls(
            id=project.id,
            workdir=project.workdir,
            env=project.env,
            max_concurrency=project.max_concurrency,
            default_timeout_s=project.default_timeout_s,
            created_at=project.created_at,
            updated_at=project.updated_at,
        )


class ShellRequest(Strict):
    command: str = Field(description="run by /bin/sh -c in the project's workdir")
    priority: Priority = Priority.NORMAL
    timeout_s: float | None = None
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = Field(default=None, description="relative to the workdir")


class CommandOut(BaseModel):
    id: str
    project: str
    command: str
    priority: Priority
    status: str
    timeout_s: float | None
    requested_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    exit_code: int | None
    reason: str | None
    duration_ms: int | None
    error: str | None
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
            )
        }
        links = {
            "self": f"/commands/{state.id}",
            "events": f"/projects/{state.project}/events?stream_id={state.id}",
            "cancel": f"/commands/{state.id}/cancel",
        }
        return cls(**fields, links=links)


class SessionCreate(Strict):
    api_key: str
