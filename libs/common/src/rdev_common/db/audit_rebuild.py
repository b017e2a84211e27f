"""Rebuild of the audit projections: reset them in one transaction, let the service replay.

The reset deletes every row that the streams can still replay (sequence at or
above each stream's first sequence), moves each tracking position back to just
before it and bumps its generation. The running audit service sees the new
generation at its next step, re-positions its durable consumers there, and
projects the streams again; because the projection is deterministic, it ends
with the same rows and the same chains. Rows of events the streams no longer
hold (aged out by retention) are kept, and each chain continues from them.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rdev_common.audit import GENESIS
from rdev_common.db.tables import AuditActorRow, AuditLogRow, AuditPositionRow, CommandHistoryRow
from rdev_common.streams import ADMIN, LIFECYCLE


async def _position(session: AsyncSession, stream: str) -> AuditPositionRow:
    stmt = select(AuditPositionRow).where(AuditPositionRow.stream == stream).with_for_update()
    row = (await session.execute(stmt)).scalar_one_or_none()
    if row is None:
        row = AuditPositionRow(
            stream=stream, last_seq=0, last_hash=GENESIS, generation=0, updated_at=datetime.now(UTC)
        )
        session.add(row)
    return row


async def _kept_hash(session: AsyncSession, stream: str, first_seq: int) -> str:
    stmt = (
        select(AuditLogRow.hash)
        .where(AuditLogRow.stream == stream, AuditLogRow.seq < first_seq)
        .order_by(AuditLogRow.seq.desc())
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none() or GENESIS


async def reset_projections(
    sessions: async_sessionmaker[AsyncSession], first_seqs: dict[str, int]
) -> dict[str, int]:
    """Reset the projections of the streams in `first_seqs` (stream → its first sequence).

    Returns each stream's new generation.
    """
    generations: dict[str, int] = {}
    async with sessions() as session, session.begin():
        for stream in sorted(first_seqs):
            first = max(1, first_seqs[stream])
            position = await _position(session, stream)
            kept = await _kept_hash(session, stream, first)
            await session.execute(
                delete(AuditLogRow).where(AuditLogRow.stream == stream, AuditLogRow.seq >= first)
            )
            if stream == LIFECYCLE:
                await session.execute(
                    delete(CommandHistoryRow).where(CommandHistoryRow.first_seq >= first)
                )
            if stream == ADMIN:
                await session.execute(delete(AuditActorRow).where(AuditActorRow.seq >= first))
            position.last_seq, position.last_hash = first - 1, kept
            position.generation += 1
            position.updated_at = datetime.now(UTC)
            generations[stream] = position.generation
    return generations


async def positions(sessions: async_sessionmaker[AsyncSession]) -> dict[str, tuple[int, int]]:
    """stream → (last projected sequence, generation)."""
    async with sessions() as session:
        rows = (await session.execute(select(AuditPositionRow))).scalars().all()
        return {r.stream: (r.last_seq, r.generation) for r in rows}
