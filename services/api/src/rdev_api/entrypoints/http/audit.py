"""/audit: the audit trail — filtered cursor pages, streamed export, hash-chain verification."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from rdev_api.entrypoints.http.bounds import Moment
from rdev_api.entrypoints.http.deps import PrincipalDep
from rdev_api.entrypoints.http.schemas import Envelope, ListEnvelope
from rdev_api.service_layer import audit_service
from rdev_api.service_layer.audit_ports import AuditReader
from rdev_common.audit import AuditFilter
from rdev_common.errors import ValidationFailed

router = APIRouter(tags=["audit"])


def get_audit_reader(request: Request) -> AuditReader:
    reader: AuditReader = request.app.state.audit_reader
    return reader


AuditReaderDep = Annotated[AuditReader, Depends(get_audit_reader)]


class AuditEntryOut(BaseModel):
    id: int
    time: str
    stream: str
    seq: int
    event_id: str
    actor: str | None
    actor_name: str | None
    client_ip: str | None
    project: str | None
    action: str
    target: str | None
    outcome: str
    details: dict[str, Any]
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, row: dict[str, Any]) -> AuditEntryOut:
        return cls(**{**row, "details": json.loads(row["details"] or "{}")})


class VerifyOut(BaseModel):
    ok: bool
    checked: int
    broken: dict[str, Any] | None = None


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def audit_filter(
    actor: Annotated[str | None, Query(max_length=64, description="API key id")] = None,
    project: Annotated[str | None, Query(max_length=63)] = None,
    action: Annotated[str | None, Query(max_length=64, examples=["command.requested"])] = None,
    outcome: Annotated[Literal["success", "failure"] | None, Query()] = None,
    since: Annotated[Moment | None, Query(description="From this time (inclusive)")] = None,
    until: Annotated[Moment | None, Query(description="Before this time")] = None,
) -> AuditFilter:
    return AuditFilter(actor, project, action, outcome, _utc(since), _utc(until))


FilterDep = Annotated[AuditFilter, Depends(audit_filter)]


def _cursor(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit():
        raise ValidationFailed("cursor is not one this endpoint gave out", field="cursor")
    return int(value)


@router.get("/audit", response_model=ListEnvelope[AuditEntryOut])
async def list_audit(
    principal: PrincipalDep,
    reader: AuditReaderDep,
    flt: FilterDep,
    cursor: Annotated[str | None, Query(pattern="^[0-9]{1,19}$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ListEnvelope[AuditEntryOut]:
    """Audit rows, newest first; follow `next_cursor` for older ones."""
    rows, next_id = await audit_service.list_entries(reader, principal, flt, _cursor(cursor), limit)
    return ListEnvelope(
        data=[AuditEntryOut.of(r) for r in rows],
        next_cursor=str(next_id) if next_id is not None else None,
    )


@router.get("/audit/export", response_class=StreamingResponse)
async def export_audit(
    principal: PrincipalDep,
    reader: AuditReaderDep,
    flt: FilterDep,
    fmt: Annotated[Literal["jsonl", "csv"], Query(alias="format")] = "jsonl",
) -> StreamingResponse:
    """Every matching row, oldest first, streamed as JSON lines or CSV."""
    chunks = audit_service.export(reader, principal, flt, fmt)
    media = "application/x-ndjson" if fmt == "jsonl" else "text/csv; charset=utf-8"
    name = f"rdev-audit.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    return StreamingResponse(chunks, media_type=media, headers=headers)


@router.get("/audit/verify", response_model=Envelope[VerifyOut])
async def verify_audit(principal: PrincipalDep, reader: AuditReaderDep) -> Envelope[VerifyOut]:
    """Recompute the hash chains; `broken` names the first row that does not hold."""
    result = await audit_service.verify(reader, principal)
    broken = None
    if result.broken is not None:
        b = result.broken
        broken = {"id": b.id, "stream": b.stream, "seq": b.seq, "problem": b.problem}
    return Envelope(data=VerifyOut(ok=broken is None, checked=result.checked, broken=broken))
