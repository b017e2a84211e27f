"""Read queries over the audit projections, shared by the api and the CLI (their
filter and results are plain types of rdev_common.audit).

The audit service is the only writer of these tables; readers use these queries
read-only. Large reads (export, verify) walk the table in keyset chunks, each a
short query of its own, so memory stays flat and no transaction is held open
for the length of a multi-million-row export.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rdev_common.audit import CONTENT_FIELDS, AuditFilter, ChainChecker, Verification, iso
from rdev_common.db.tables import ApiKeyRow, AuditActorRow, AuditLogRow, CommandHistoryRow

CHUNK = 2000


def _select(flt: AuditFilter) -> Select[AuditLogRow, str]:
    log, actors, keys = AuditLogRow, AuditActorRow, ApiKeyRow
    stmt = (
        select(log, func.coalesce(actors.name, keys.name).label("actor_name"))
        .outerjoin(actors, actors.key_id == log.actor)
        .outerjoin(keys, keys.id == log.actor)
    )
    conditions = [
        column == value
        for column, value in (
            (log.actor, flt.actor),
            (log.project, flt.project),
            (log.action, flt.action),
            (log.outcome, flt.outcome),
        )
        if value is not None
    ]
    if flt.since is not None:
        conditions.append(log.time >= flt.since)
    if flt.until is not None:
        conditions.append(log.time < flt.until)
    if flt.projects is not None:
        conditions.append(log.project.in_(sorted(flt.projects)))
    return stmt.where(and_(*conditions)) if conditions else stmt


def _as_dict(row: Any) -> dict[str, Any]:
    entry: AuditLogRow = row[0]
    return {
        "id": entry.id,
        "time": iso(entry.time),
        "stream": entry.stream,
        "seq": entry.seq,
        "event_id": entry.event_id,
        "actor": entry.actor,
        "actor_name": row.actor_name,
        "client_ip": entry.client_ip,
        "project": entry.project,
        "action": entry.action,
        "target": entry.target,
        "outcome": entry.outcome,
        "details": entry.details,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }


async def audit_page(
    session: AsyncSession, flt: AuditFilter, before_id: int | None, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    """Newest first; returns the rows and the cursor (an id) of the next page, if any."""
    stmt = _select(flt)
    if before_id is not None:
        stmt = stmt.where(AuditLogRow.id < before_id)
    result = await session.execute(stmt.order_by(AuditLogRow.id.desc()).limit(limit + 1))
    rows = [_as_dict(r) for r in result.all()]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1]["id"] if more and rows else None)


async def audit_rows(
    sessions: async_sessionmaker[AsyncSession], flt: AuditFilter, chunk: int = CHUNK
) -> AsyncIterator[dict[str, Any]]:
    """Every matching row, oldest first, one short query per `chunk` rows."""
    after = 0
    while True:
        async with sessions() as session:
            stmt = _select(flt).where(AuditLogRow.id > after)
            result = await session.execute(stmt.order_by(AuditLogRow.id).limit(chunk))
            rows = [_as_dict(r) for r in result.all()]
        for row in rows:
            yield row
        if len(rows) < chunk:
            return
        after = rows[-1]["id"]


async def chain_rows(
    sessions: async_sessionmaker[AsyncSession], chunk: int = CHUNK
) -> AsyncIterator[dict[str, Any]]:
    """Every row in chain order: by stream, then by sequence."""
    cursor: tuple[str, int] = ("", 0)
    log = AuditLogRow
    while True:
        async with sessions() as session:
            after = or_(log.stream > cursor[0], and_(log.stream == cursor[0], log.seq > cursor[1]))
            stmt = select(log).where(after).order_by(log.stream, log.seq).limit(chunk)
            entries = (await session.execute(stmt)).scalars().all()
            rows = [{c: getattr(e, c) for c in _CHAIN_COLUMNS} for e in entries]
        for row in rows:
            yield row
        if len(rows) < chunk:
            return
        cursor = (rows[-1]["stream"], rows[-1]["seq"])


# What the chain check reads of a row: its id, what its hash covers, and the links.
_CHAIN_COLUMNS = ("id", *CONTENT_FIELDS, "prev_hash", "hash")


async def verify_chain(sessions: async_sessionmaker[AsyncSession]) -> Verification:
    """Recompute every chain; the first broken row, if any."""
    checker = ChainChecker()
    async for row in chain_rows(sessions):
        broken = checker.check(row)
        if broken is not None:
            return Verification(checker.checked, broken)
    return Verification(checker.checked, None)


async def command_page(
    session: AsyncSession,
    project: str,
    before: tuple[datetime, str] | None,
    limit: int,
    status: str | None = None,
) -> tuple[list[CommandHistoryRow], tuple[datetime, str] | None]:
    """A project's commands, newest request first, keyset-paged on (requested_at, id)."""
    ch = CommandHistoryRow
    stmt = select(ch).where(ch.project == project, ch.requested_at.is_not(None))
    if status is not None:
        stmt = stmt.where(ch.status == status)
    if before is not None:
        at, cid = before
        stmt = stmt.where(or_(ch.requested_at < at, and_(ch.requested_at == at, ch.id < cid)))
    stmt = stmt.order_by(ch.requested_at.desc(), ch.id.desc()).limit(limit + 1)
    rows = list((await session.execute(stmt)).scalars().all())
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if more and rows else None
    return rows, ((last.requested_at, last.id) if last and last.requested_at else None)
