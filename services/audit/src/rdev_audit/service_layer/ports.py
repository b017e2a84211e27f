"""Ports of the audit service: where projections are written."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

from rdev_audit.domain.history import CommandChange
from rdev_common.audit import AuditContent


@dataclass(frozen=True)
class Position:
    """Tracking: how far one stream has been projected, and the rebuild generation."""

    stream: str
    last_seq: int
    last_hash: str
    generation: int


class ProjectionUnitOfWork(Protocol):
    """One transaction over the audit projections and their tracking position.

    `advance` is a compare-and-set on the tracking row (generation and last
    sequence), so a rebuild that commits in between makes the batch roll back
    instead of writing on top of the rebuilt projection.
    """

    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    async def position(self, stream: str) -> Position: ...
    async def append(self, content: AuditContent, prev_hash: str, hash_: str) -> None: ...
    async def preload_commands(self, command_ids: set[str]) -> None:
        """Read these history rows in one query (a batch touches many commands)."""
        ...

    async def command_actor(self, command_id: str) -> str | None: ...
    async def apply_command(self, change: CommandChange, seq: int) -> None: ...
    async def remember_actor(self, key_id: str, name: str, seq: int) -> None: ...
    async def advance(self, expected: Position, seq: int, last_hash: str, now: datetime) -> bool:
        """Move the position on, only if it is still `expected`; False if it moved."""
        ...

    async def commit(self) -> None: ...
