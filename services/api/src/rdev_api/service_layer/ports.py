"""Ports: what the use cases need from the outside world."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

from rdev_api.domain.model import ApiKey, Project
from rdev_api.domain.ratelimit import Decision, RateLimitPolicy
from rdev_common.events import (
    CloudEvent,
    CommandCancelRequested,
    CommandCompleted,
    CommandRequested,
    Priority,
    TtySize,
)
from rdev_common.run_input import Message, Reply


class ProjectRepository(Protocol):
    async def get(self, project_id: str) -> Project | None: ...
    async def list(self) -> list[Project]: ...
    async def add(self, project: Project) -> None: ...
    async def get_for_update(self, project_id: str) -> Project | None:
        """The stored project, read for a change in this transaction (never from a cache)."""
        ...

    async def update(self, project: Project) -> None: ...
    async def remove(self, project_id: str) -> None: ...


class ApiKeyRepository(Protocol):
    async def get(self, key_id: str) -> ApiKey | None: ...
    async def get_by_hash(self, secret_hash: str) -> ApiKey | None:
        """The key whose current secret, or previous secret still in grace, has this hash."""
        ...

    async def add(self, key: ApiKey) -> None: ...
    async def count(self) -> int: ...
    async def list(self) -> list[ApiKey]: ...
    async def get_for_update(self, key_id: str) -> ApiKey | None: ...
    async def fresh(self, key_id: str) -> ApiKey | None:
        """The stored key, never from a cache (`last_used_at` as last flushed)."""
        ...

    async def update(self, key: ApiKey) -> None:
        """Store revocation, rotation and policy changes (not `last_used_at`)."""
        ...

    async def touch(self, last_used: dict[str, datetime]) -> None:
        """Move `last_used_at` forward (never back) for many keys at once."""
        ...


class Outbox(Protocol):
    """Admin events written in the transaction of their change, published later."""

    async def add(self, event: CloudEvent, subject: str) -> None: ...


class RateLimiter(Protocol):
    """Counts requests per caller and policy, shared by every api replica."""

    async def hit(self, bucket: str, policy: RateLimitPolicy) -> Decision: ...


class ActiveCommands(Protocol):
    async def of_project(self, project: str) -> list[str]:
        """Ids of the project's commands that are queued or running."""
        ...


class SecretStore(Protocol):
    """Where executors read project secrets from; the api keeps it in step with the database."""

    async def sync(
        self, project: str, current: Callable[[], Awaitable[dict[str, str] | None]]
    ) -> None:
        """Store `current()`, the project's secrets as read from the database at the
        moment of the write (None: the project is gone); racing writers leave the
        newest."""
        ...

    async def remove(self, project: str) -> None: ...


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
    outbox: Outbox

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
    stdin: bool = False
    tty: TtySize | None = None


class RunInput(Protocol):
    """Carries a run's input to the executor running it."""

    async def send(self, project: str, command_id: str, message: Message) -> Reply | None:
        """The executor's answer; None if none came (run not running)."""
        ...


class CommandLog(Protocol):
    """Writes command events to, and reads command state from, the event log."""

    async def request(
        self, event: CommandRequested, event_id: str, traceparent: str | None
    ) -> Submitted: ...
    async def cancel(self, event: CommandCancelRequested) -> None: ...
    async def end_before_start(self, event: CommandCompleted) -> bool:
        """Store the run's `completed` unless it has started (or ended) meanwhile;
        False if it had, and its executor ends it."""
        ...

    async def claim(self, token: str, command_id: str) -> str:
        """Bind an idempotency token to `command_id` unless bound; returns the bound id."""
        ...

    async def project_command_ids(self, project: str) -> list[str]:
        """Every command id of the project still in the log (UUIDv7: sorts by time)."""
        ...

    async def state(self, command_id: str, project: str | None = None) -> CommandState | None: ...
    async def request_of(self, command_id: str) -> CommandRequested | None:
        """The command as it was requested (None if the log no longer holds it)."""
        ...


@dataclass(frozen=True)
class StoredEvent:
    """An event as stored in the log, with its stream sequence."""

    seq: int
    subject: str
    data: bytes
    headers: Mapping[str, str] | None = None  # binary-mode events carry attributes here


class RunReader(Protocol):
    """Reads run events in stream order, from a sequence on, live."""

    def events(
        self, filter_subject: str, start_seq: int, follow: bool = True
    ) -> AsyncIterator[StoredEvent]: ...
    async def last_seq(self, subject: str) -> int | None: ...


class RunQueue(Protocol):
    async def announce(self, project: str, command_id: str) -> bool:
        """Publish where the queued run stands (a `command.queued` event) if that
        changed; False once the run has left the queue."""
        ...


@dataclass(frozen=True)
class Services:
    """What the entry points are given: ports, a clock, nothing concrete. Built once, by
    the composition root (bootstrap.py); never changed after."""

    uow: Callable[[], UnitOfWork]
    command_log: CommandLog
    run_reader: RunReader
    clock: Callable[[], datetime]
    ready_checks: dict[str, Callable[[], Awaitable[bool]]]
    rate_limiter: RateLimiter | None = None
    active_commands: ActiveCommands | None = None
    secret_store: SecretStore | None = None
    queue: RunQueue | None = None
    run_input: RunInput | None = None
    # key id → when it was last used, flushed to the database in batches
    key_usage: dict[str, datetime] = field(default_factory=dict)
