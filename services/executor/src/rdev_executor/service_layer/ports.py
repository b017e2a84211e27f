"""Ports of the executor: where commands run, and where their events go."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, TypeVar, runtime_checkable

from rdev_common.events import CommandRequested, EventData, OutputBatch
from rdev_executor.domain.output import Batch


@dataclass(frozen=True)
class Chunk:
    stream: str
    data: bytes


class PayloadTooLarge(Exception):
    """Raised by `EventLog.publish` for an event larger than the broker accepts."""


class RunAlreadyEnded(Exception):
    """Raised by `EventLog.publish` for a `started` refused because the run has a
    `completed` already: it was cancelled while queued, and must not run."""


class SecretsUnreadable(Exception):
    """Raised by `SecretSource.for_project` for secrets this executor cannot open (sealed
    under a key it was not given): the run fails rather than run without them."""


class ProcessLost(Exception):
    """Raised by `Process.wait()` when the command's host went away mid-run
    (e.g. its pod was deleted or evicted): the exit status is unknowable."""


class Process(Protocol):
    """A started command."""

    def output(self) -> AsyncIterator[Chunk]:
        """stdout and stderr chunks as they are read, until both streams end."""
        ...

    async def wait(self) -> int: ...
    def signal_group(self, signum: int) -> None: ...

    def close(self) -> None:
        """Stop reading output: `output()` ends after what was already read."""
        ...


class InputClosed(Exception):
    """Raised by `Interactive.write_input` once the command's stdin is closed."""


@runtime_checkable
class Interactive(Protocol):
    """A process started with stdin open (`CommandRequested.stdin`), or a terminal."""

    async def write_input(self, data: bytes) -> None:
        """Write into the command's stdin; returns once written, waiting while the
        command does not read. Raises InputClosed after EOF or once it closed stdin."""
        ...

    def close_input(self) -> None:
        """EOF on the command's stdin."""
        ...


@runtime_checkable
class Terminal(Protocol):
    def resize(self, cols: int, rows: int) -> None: ...


class Backend(Protocol):
    async def start(self, request: CommandRequested, extra_env: dict[str, str]) -> Process: ...


class EventLog(Protocol):
    async def publish(
        self,
        event: EventData,
        kind: str,
        *,
        project: str,
        command_id: str,
        event_id: str | None = None,
    ) -> int:
        """Store the event; retries until stored. Returns its stream sequence.

        Raises `PayloadTooLarge`, before sending anything, if the broker would refuse
        the event for its size.
        """
        ...

    async def publish_output(self, batch: OutputBatch, *, project: str) -> int:
        """Store an output batch (binary mode), as `publish` stores an event."""
        ...

    async def exists(self, project: str, command_id: str, kind: str) -> bool: ...

    async def latest_kind(self, project: str, command_id: str) -> str | None:
        """The kind of the run's newest event (`requested`, `started`, …), None if none."""
        ...


class SecretSource(Protocol):
    async def for_project(self, project: str) -> dict[str, str]:
        """The project's secret environment variables (name → value); raises
        SecretsUnreadable when they are stored but cannot be opened."""
        ...


class RunSpool(Protocol):
    """One run's output batches kept on disk while the broker is away, in order."""

    def append(self, batch: Batch) -> bool:
        """Keep `batch` after the others; False if the executor's spool has no room."""
        ...

    def peek(self) -> Batch:
        """The oldest batch kept (there is one)."""
        ...

    def pop(self) -> None:
        """Forget the oldest batch: it is stored."""
        ...

    def close(self) -> None:
        """Remove what is left and give its room back."""
        ...


class Spool(Protocol):
    """The executor's room on disk for output the broker cannot take yet, bounded."""

    def open(self, command_id: str) -> RunSpool: ...


LeaseT = TypeVar("LeaseT")


class ProjectSlots(Protocol[LeaseT]):
    """A project's concurrency slots, shared by every executor."""

    async def acquire(self, project: str, limit: int) -> LeaseT | None:
        """A free slot of the project, or None when all `limit` slots are held."""
        ...

    async def release(self, lease: LeaseT) -> None: ...
