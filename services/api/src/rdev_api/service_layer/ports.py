"""Ports: what the use cases need from the outside world."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

from rdev_api.domain.model import ApiKey, Project
from rdev_common.events import CommandCancelRequested, CommandRequested, Priority


class ProjectRepository(Protocol):
    async def get(self, project_id: str) -> Project | None: ...
    async def list(self) -> list[Project]: ...
    async def add(self, project: Project) -> None: ...


class ApiKeyRepository(Protocol):
    async def get(self, key_id: str) -> ApiKey | None: ...
    async def get_by_hash(self, secret_hash: str) -> ApiKey | None: ...
    async def add(self, key: ApiKey) -> None: ...
    async def count(self) -> int: ...


class SessionRepository(Protocol):
    async def add(
        self, token_hash: str, key_id: str, now: datetime, expires_at: datetime
    ) -> None: ...
    async def key_id_for(self, token_hash: str, now: datetime) -> str | None: ...
    async def remove(self, token_hash: str) -> None: ...


class UnitOfWork(Protocol):
    """One transaction: commit explicitly, roll back on exit otherwise."""

    projects: ProjectRepository
    api_keys: ApiKeyRepository
    sessions: SessionRepository

    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    async def commit(self) -> None: ...


@dataclass(frozen=True)
class Submitted:
    command_id: str
    sequence: int
    duplicate: bool


@dataclass(frozen=True)
class CommandState:
    """A command as the event log tells it."""

    id: str
    project: str
    command: str
    priority: Priority
    status: str
    requested_at: datetime
    timeout_s: float | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    exit_code: int | None = None
    reason: str | None = None
    duration_ms: int | None = None
    error: str | None = None


class CommandLog(Protocol):
    """Writes command events to, and reads command state from, the event log."""

    async def request(
        self, event: CommandRequested, event_id: str, traceparent: str | None
    ) -> Submitted: ...
    async def cancel(self, event: CommandCancelRequested) -> None: ...
    async def state(self, command_id: str, project: str | None = None) -> CommandState | None: ...


@dataclass(frozen=True)
class StoredEvent:
    """An event as stored in the log, with its stream sequence."""

    seq: int
    subject: str
    data: bytes


class RunReader(Protocol):
    """Reads run events in stream order, from a sequence on, live."""

    def events(self, filter_subject: str, start_seq: int) -> AsyncIterator[StoredEvent]: ...
    async def last_seq(self, subject: str) -> int | None: ...


@dataclass
class Services:
    """What the entry points are given: ports, a clock, nothing concrete."""

    uow: Callable[[], UnitOfWork]
    command_log: CommandLog
    run_reader: RunReader
    clock: Callable[[], datetime]
    ready_checks: dict[str, Callable[[], Awaitable[bool]]]
