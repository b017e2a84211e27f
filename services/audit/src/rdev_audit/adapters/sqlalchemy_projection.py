"""The projection's unit of work on SQLAlchemy (SQLite or PostgreSQL)."""

from __future__ import annotations

from datetime import datetime
from types import TracebackType
from typing import Any, Self

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rdev_audit.domain.history import CommandChange, later_status
from rdev_audit.service_layer.ports import Position
from rdev_common.audit import GENESIS, AuditContent
from rdev_common.db.tables import AuditActorRow, AuditLogRow, AuditPositionRow, CommandHistoryRow


class SqlAlchemyProjectionUnitOfWork:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._rows: list[dict[str, Any]] = []
        self._commands: dict[str, CommandHistoryRow | None] = {}

    async def __aenter__(self) -> Self:
        self.session = self._sessions()
        self._rows, self._commands = [], {}
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.session.rollback()
        await self.session.close()

    async def position(self, stream: str) -> Position:
        stmt = select(AuditPositionRow).where(AuditPositionRow.stream == stream).with_for_update()
        row = (await self.session.execute(stmt)).scalar_one_or_none()
        if row is None:
            row = AuditPositionRow(
                stream=stream, last_seq=0, last_hash=GENESIS, generation=0, updated_at=_epoch()
            )
            self.session.add(row)
            await self.session.flush()
        return Position(row.stream, row.last_seq, row.last_hash, row.generation)

    async def append(self, content: AuditContent, prev_hash: str, hash_: str) -> None:
        row = {name: getattr(content, name) for name in content.__dataclass_fields__}
        self._rows.append({**row, "prev_hash": prev_hash, "hash": hash_})

    async def preload_commands(self, command_ids: set[str]) -> None:
        wanted = sorted(command_ids - self._commands.keys())
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            stmt = select(CommandHistoryRow).where(CommandHistoryRow.id.in_(chunk))
            found = {r.id: r for r in (await self.session.execute(stmt)).scalars()}
            self._commands.update({cid: found.get(cid) for cid in chunk})

    async def _command(self, command_id: str) -> CommandHistoryRow | None:
        if command_id not in self._commands:
            self._commands[command_id] = await self.session.get(CommandHistoryRow, command_id)
        return self._commands[command_id]

    async def command_actor(self, command_id: str) -> str | None:
        row = await self._command(command_id)
        return row.actor if row is not None else None

    async def apply_command(self, change: CommandChange, seq: int) -> None:
        row = await self._command(change.command_id)
        if row is None:
            row = CommandHistoryRow(
                id=change.command_id, project=change.project, first_seq=seq, status="queued"
            )
            self.session.add(row)
            self._commands[change.command_id] = row
        for name, value in change.values.items():
            setattr(row, name, value)
        row.status = later_status(row.status, change.status)
        row.last_seq = seq

    async def remember_actor(self, key_id: str, name: str, seq: int) -> None:
        await self.session.merge(AuditActorRow(key_id=key_id, name=name, seq=seq))

    async def advance(self, expected: Position, seq: int, last_hash: str, now: datetime) -> bool:
        if self._rows:
            await self.session.execute(insert(AuditLogRow), self._rows)
            self._rows = []
        pos = AuditPositionRow
        result = await self.session.execute(
            update(pos)
            .where(
                pos.stream == expected.stream,
                pos.generation == expected.generation,
                pos.last_seq == expected.last_seq,
            )
            .values(last_seq=seq, last_hash=last_hash, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    async def commit(self) -> None:
        await self.session.commit()


def _epoch() -> datetime:
    return datetime.fromisoformat("1970-01-01T00:00:00+00:00")
