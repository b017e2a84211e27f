"""Audit trail use cases: who may read which rows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from rdev_api.domain.model import Principal, Scope
from rdev_api.service_layer.audit_ports import AuditReader
from rdev_api.service_layer.auth import require_scope
from rdev_common.audit import AuditFilter, Verification
from rdev_common.audit_export import ExportFormat


def visible(principal: Principal, flt: AuditFilter) -> AuditFilter:
    """A key limited to some projects reads only their rows."""
    require_scope(principal, Scope.AUDIT_READ)
    return replace(flt, projects=principal.key.projects)


async def list_entries(
    reader: AuditReader, principal: Principal, flt: AuditFilter, before_id: int | None, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    return await reader.page(visible(principal, flt), before_id, limit)


def export(
    reader: AuditReader, principal: Principal, flt: AuditFilter, fmt: ExportFormat
) -> AsyncIterator[bytes]:
    return reader.export(visible(principal, flt), fmt)


async def verify(reader: AuditReader, principal: Principal) -> Verification:
    """The whole chain is checked, so only a key that may read all of it may ask."""
    require_scope(principal, Scope.AUDIT_READ)
    if principal.key.projects is not None:
        require_scope(principal, Scope.ADMIN)
    return await reader.verify()
