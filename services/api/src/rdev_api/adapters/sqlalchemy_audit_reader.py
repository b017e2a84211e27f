"""The audit trail read from the shared database, read-only.

The api reads the audit service's tables directly instead of asking the audit
service: the tables live in the database the api already uses, the queries are
plain keyset reads shared with the CLI (rdev_common.db.audit_queries), and the
audit service stays a consumer with no API of its own to keep available. Only
the audit service writes these tables.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rdev_api.service_layer.ports import CommandState
from rdev_common.audit import AuditFilter, Verification, iso
from rdev_common.audit_export import ExportFormat, export_chunks
from rdev_common.db.audit_queries import (
    audit_page,
    audit_rows,
    command_page,
    verify_chain,
)
from rdev_common.db.tables import CommandHistoryRow
from rdev_common.events import Priority


class SqlAlchemyAuditReader:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def page(
        self, flt: AuditFilter, before_id: int | None, limit: int
    ) -> tuple[list[dict[str, Any]], int | None]:
        async with self.sessions() as session:
            return await audit_page(session, flt, before_id, limit)

    def export(self, flt: AuditFilter, fmt: ExportFormat) -> AsyncIterator[bytes]:
        return export_chunks(audit_rows(self.sessions, flt), fmt)

    async def verify(self) -> Verification:
        return await verify_chain(self.sessions)

    async def command_history(
        self, project: str, status: str | None, cursor: str | None, limit: int
    ) -> tuple[list[CommandState], str | None]:
        before = _parse_cursor(cursor)
        async with self.sessions() as session:
            rows, after = await command_page(session, project, before, limit, status)
        next_cursor = f"{iso(after[0])}~{after[1]}" if after else None
        return [_state(r) for r in rows], next_cursor


def _parse_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    if not cursor or "~" not in cursor:
        return None
    at, _, command_id = cursor.partition("~")
    try:
        return datetime.fromisoformat(at.replace("Z", "+00:00")), command_id
    except ValueError:
        return None


def _state(row: CommandHistoryRow) -> CommandState:
    assert row.requested_at is not None, "command_page returns requested commands only"
    return CommandState(
        id=row.id,
        project=row.project,
        command=row.command or "",
        priority=Priority(row.priority or "normal"),
        status=row.status,
        requested_at=row.requested_at,
        timeout_s=row.timeout_s,
        started_at=row.started_at,
        completed_at=row.completed_at,
        exit_code=row.exit_code,
        reason=row.reason,
        duration_ms=row.duration_ms,
        error=row.error,
    )
