"""The projection use case: a batch of stream messages → audit rows, history, position.

A batch is written in one transaction together with the stream position it
reaches (eventsourcing-style tracking). Messages at or below the recorded
position are skipped, so redelivery after a crash never duplicates a row, and
the consumer is always restarted right after the recorded position, so nothing
is skipped either.

The caller passes the position it last committed instead of the batch reading
it again: the tracking row's compare-and-set (generation and last sequence) at
the end of the batch proves it is still the recorded one, and rolls the batch
back otherwise (a rebuild, another instance), so the chain never continues from
a stale hash.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from rdev_audit.domain.entries import action_of, audit_content, unreadable_content
from rdev_audit.domain.history import command_change
from rdev_audit.service_layer.ports import Position, ProjectionUnitOfWork
from rdev_common import subjects
from rdev_common.audit import AuditContent, chain_hash

log = structlog.get_logger()


@dataclass(frozen=True)
class StreamMessage:
    seq: int
    subject: str
    data: bytes
    stored_at: datetime
    headers: Mapping[str, str] | None = None


class Resync(Exception):
    """The tracking position changed under us (a rebuild): restart from it."""


@dataclass(frozen=True)
class Source:
    """A stream this projection reads; `kind` says which events of it are audited."""

    stream: str
    kind: str  # "lifecycle" | "admin" | "webhooks"


def _parse(msg: StreamMessage) -> Mapping[str, Any] | str:
    try:
        event = json.loads(msg.data)
    except ValueError as exc:
        return f"not JSON: {exc}"
    if not isinstance(event, dict) or "type" not in event:
        return "not a CloudEvent"
    return event


async def _project_one(
    uow: ProjectionUnitOfWork, source: Source, msg: StreamMessage, last_hash: str
) -> str:
    """Write what one message says; returns the chain's new last hash."""
    event = _parse(msg)
    content: AuditContent | None
    if isinstance(event, str):
        log.error("unreadable event recorded", stream=source.stream, seq=msg.seq, problem=event)
        content = unreadable_content(source.stream, msg.seq, msg.subject, msg.stored_at, event)
    else:
        change = command_change(event) if source.kind == "lifecycle" else None
        actor = await uow.command_actor(change.command_id) if change else None
        content = audit_content(source.stream, source.kind, msg.seq, event, known_actor=actor)
        if change is not None:
            await uow.apply_command(change, msg.seq)
        await _learn_actor_name(uow, event, msg.seq)
    if content is None:
        return last_hash
    new_hash = chain_hash(last_hash, content)
    await uow.append(content, last_hash, new_hash)
    return new_hash


async def _learn_actor_name(uow: ProjectionUnitOfWork, event: Mapping[str, Any], seq: int) -> None:
    if not action_of(str(event.get("type", ""))).startswith("api_key."):
        return
    data = event.get("data")
    if not isinstance(data, Mapping):
        return
    key_id = data.get("id") or data.get("key_id") or event.get("subject")
    name = data.get("name")
    if isinstance(key_id, str) and isinstance(name, str):
        await uow.remember_actor(key_id, name, seq)


async def project(
    uow: ProjectionUnitOfWork,
    source: Source,
    position: Position,
    batch: Sequence[StreamMessage],
    clock: Callable[[], datetime],
) -> Position:
    """Project `batch` (in stream order) after `position` in one transaction.

    Returns the new position; raises `Resync` when `position` is no longer the
    recorded one.
    """
    async with uow:
        last_seq, last_hash = position.last_seq, position.last_hash
        fresh = [m for m in batch if m.seq > last_seq]
        if not fresh:
            return position
        if source.kind == "lifecycle":
            await uow.preload_commands({_command_id(m.subject) for m in fresh})
        for msg in fresh:
            last_hash = await _project_one(uow, source, msg, last_hash)
            last_seq = msg.seq
        if not await uow.advance(position, last_seq, last_hash, clock()):
            raise Resync(f"{source.stream} is no longer at {position.last_seq}")
        await uow.commit()
    return Position(source.stream, last_seq, last_hash, position.generation)


def _command_id(subject: str) -> str:
    """`rdev.runs.<project>.<command_id>.<kind>` → command id (a hint; events are authoritative)."""
    try:
        return subjects.parse_run_subject(subject)[1]
    except ValueError:
        return ""


async def current_position(uow: ProjectionUnitOfWork, stream: str) -> Position:
    async with uow:
        position = await uow.position(stream)
        await uow.commit()
    return position
