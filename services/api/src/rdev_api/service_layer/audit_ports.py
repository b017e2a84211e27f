"""Port of the audit trail as the api reads it (the audit service writes it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from rdev_api.service_layer.ports import CommandState
from rdev_common.audit import AuditFilter, Verification
from rdev_common.audit_export import ExportFormat


class AuditReader(Protocol):
    async def page(
        self, flt: AuditFilter, before_id: int | None, limit: int
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Newest first, and the cursor of the next page."""
        ...

    def export(self, flt: AuditFilter, fmt: ExportFormat) -> AsyncIterator[bytes]:
        """Every matching row, oldest first, as chunks of encoded bytes."""
        ...

    async def verify(self) -> Verification: ...


class CommandHistoryReader(Protocol):
    """Long command histories from the audit service's projection (outlives RDEV_RUNS)."""

    async def command_history(
        self, project: str, status: str | None, cursor: str | None, limit: int
    ) -> tuple[list[CommandState], str | None]:
        """Newest request first; the cursor is opaque."""
        ...
