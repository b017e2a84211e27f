"""The projection's unit of work on SQLAlchemy Core (SQLite or PostgreSQL).

A batch's rows are collected in memory and written in `advance`, one
executemany per table: the ORM's unit of work (identity map, change tracking,
one flush per statement) cost more CPU per event than everything else the
projection does, and nothing here needs it.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from rdev_audit.domain.history import CommandChange, later_status
from rdev_audit.service_layer.ports import Position
from rdev_common.audit import CONTENT_FIELDS, GENESIS, AuditContent
from rdev_common.db.tables import (
    AuditActorRow,
    AuditLogRow,
    AuditPositionRow,
    Base,
    CommandHistoryRow,
)


def _table(row: type[Base]) -> Table:
    return Base.metadata.tables[row.__tablename__]


AUDIT_LOG = _table(AuditLogRow)
POSITIONS = _table(AuditPositionRow)
ACTORS = _table(AuditActorRow)
HISTORY = _table(CommandHistoryRow)
HISTORY_COLUMNS = tuple(c.name for c in HISTORY.columns)
# Parameters of a query with an IN list stay well below every driver's limit.
CHUNK = 500


class SqlAlchemyProjectionUnitOfWork:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._reset()

    def _reset(self) -> None:
        self._rows: list[dict[str, Any]] = []
        # Known history rows (None: known not to exist), and what this batch changed.
        self._commands: dict[str, dict[str, Any] | None] = {}
        self._created: set[str] = set()
        self._changed: dict[str, set[str]] = defaultdict(set)
        self._actors: dict[str, dict[str, Any]] = {}

    async def __aenter__(self) -> Self:
        self._reset()
        self._conn: AsyncConnection = await self._engine.connect()
        await self._conn.begin()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._conn.rollback()
        finally:
            await self._conn.close()
            self._reset()

    async def position(self, stream: str) -> Position:
        stmt = (
            select(POSITIONS.c.last_seq, POSITIONS.c.last_hash, POSITIONS.c.generation)
            .where(POSITIONS.c.stream == stream)
            .with_for_update()
        )
        row = (await self._conn.execute(stmt)).one_or_none()
        if row is None:
            values = {"stream": stream, "last_seq": 0, "last_hash": GENESIS, "generation": 0}
            await self._conn.execute(insert(POSITIONS).values(updated_at=_epoch(), **values))
            return Position(stream, 0, GENESIS, 0)
        return Position(stream, row.last_seq, row.last_hash, row.generation)

    async def append(self, content: AuditContent, prev_hash: str, hash_: str) -> None:
        row = {name: getattr(content, name) for name in CONTENT_FIELDS}
        row["prev_hash"], row["hash"] = prev_hash, hash_
        self._rows.append(row)

    async def preload_commands(self, command_ids: set[str]) -> None:
        wanted = sorted(command_ids - self._commands.keys())
        for start in range(0, len(wanted), CHUNK):
            chunk = wanted[start : start + CHUNK]
            stmt = select(HISTORY).where(HISTORY.c.id.in_(chunk))
            found = {r["id"]: dict(r) for r in (await self._conn.execute(stmt)).mappings()}
            self._commands.update({cid: found.get(cid) for cid in chunk})

    async def _command(self, command_id: str) -> dict[str, Any] | None:
        if command_id not in self._commands:
            await self.preload_commands({command_id})
        return self._commands[command_id]

    async def command_actor(self, command_id: str) -> str | None:
        row = await self._command(command_id)
        return row["actor"] if row is not None else None

    async def apply_command(self, change: CommandChange, seq: int) -> None:
        row = await self._command(change.command_id)
        if row is None:
            row = dict.fromkeys(HISTORY_COLUMNS)
            row.update(id=change.command_id, project=change.project, first_seq=seq)
            row["status"] = "queued"
            self._commands[change.command_id] = row
            self._created.add(change.command_id)
        row.update(change.values)
        row["status"] = later_status(row["status"], change.status)
        row["last_seq"] = seq
        self._changed[change.command_id].update(change.values, ("status", "last_seq"))

    async def remember_actor(self, key_id: str, name: str, seq: int) -> None:
        self._actors[key_id] = {"key_id": key_id, "name": name, "seq": seq}

    async def advance(self, expected: Position, seq: int, last_hash: str, now: datetime) -> bool:
        pos = POSITIONS.c
        result = await self._conn.execute(
            update(POSITIONS)
            .where(
                pos.stream == expected.stream,
                pos.generation == expected.generation,
                pos.last_seq == expected.last_seq,
            )
            .values(last_seq=seq, last_hash=last_hash, updated_at=now)
        )
        if result.rowcount != 1:
            return False
        if self._rows:
            await self._conn.execute(insert(AUDIT_LOG), self._rows)
        await self._write_history()
        await self._write_actors()
        return True

    async def _write_history(self) -> None:
        created = [self._commands[cid] or {} for cid in sorted(self._created)]
        if created:
            await self._conn.execute(insert(HISTORY), created)
        by_row = update(HISTORY).where(HISTORY.c.id == bindparam("key_id"))
        for params in self._history_updates().values():
            # The SET columns are the parameters' names; `key_id` only selects the row.
            await self._conn.execute(by_row, params)

    def _history_updates(self) -> dict[tuple[str, ...], list[dict[str, Any]]]:
        """Existing rows get only the columns the batch changed: one statement per column set."""
        updates: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for cid, columns in self._changed.items():
            row = self._commands[cid]
            if cid in self._created or row is None:
                continue
            names = tuple(sorted(columns))
            updates[names].append({"key_id": cid, **{name: row[name] for name in names}})
        return updates

    async def _write_actors(self) -> None:
        """Insert or update each actor name learnt (api_key.* events: rare)."""
        keys = sorted(self._actors)
        known: set[str] = set()
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start : start + CHUNK]
            found = await self._conn.execute(
                select(ACTORS.c.key_id).where(ACTORS.c.key_id.in_(chunk))
            )
            known.update(found.scalars())
        new = [self._actors[key] for key in keys if key not in known]
        if new:
            await self._conn.execute(insert(ACTORS), new)
        old = [
            {"old_key": key, "name": self._actors[key]["name"], "seq": self._actors[key]["seq"]}
            for key in keys
            if key in known
        ]
        if old:
            by_key = update(ACTORS).where(ACTORS.c.key_id == bindparam("old_key"))
            await self._conn.execute(by_key, old)

    async def commit(self) -> None:
        await self._conn.commit()


def _epoch() -> datetime:
    return datetime.fromisoformat("1970-01-01T00:00:00+00:00")
