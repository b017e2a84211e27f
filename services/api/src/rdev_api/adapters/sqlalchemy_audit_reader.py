"""The audit trail read from the shared database, read-only.

The api reads the audit service's tables directly instead of asking the audit
service: the tables live in the database the api already uses, the queries are
plain keyset reads shared with the CLI (rdev_common.db.audit_queries), and the
audit service stays a consumer with no API of its own to keep available. Only
the audit service writes these tables.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rdev_common.audit_export import ExportFormat, export_chunks
from rdev_common.db.audit_queries import (
    AuditFilter,
    Verification,
    audit_page,
    audit_rows,
    verify_chain,
)


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
