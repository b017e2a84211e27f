"""/projects/{id}/shell and /commands"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Header, Response

from rdev_api.entrypoints.http.deps import PrincipalDep, ServicesDep, SettingsDep
from rdev_api.entrypoints.http.schemas import CommandOut, Envelope, ShellRequest
from rdev_api.service_layer import command_service, project_service
from rdev_api.service_layer.ports import CommandState

router = APIRouter(tags=["commands"])


@router.post("/projects/{project_id}/shell", status_code=202, response_model=Envelope[CommandOut])
async def submit(
    project_id: str,
    body: ShellRequest,
    principal: PrincipalDep,
    services: ServicesDep,
    settings: SettingsDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    traceparent: Annotated[str | None, Header()] = None,
) -> Envelope[CommandOut]:
    project = await project_service.get_project(services.uow(), principal, project_id)
    submitted = await command_service.submit(
        services.command_log,
        principal,
        project,
        command=body.command,
        priority=body.priority,
        timeout_s=body.timeout_s,
        max_timeout_s=settings.max_timeout_s,
        env=body.env,
        cwd=body.cwd,
        idempotency_key=idempotency_key,
        traceparent=traceparent,
    )
    if submitted.duplicate:
        state = await command_service.get_state(
            services.command_log, principal, submitted.command_id, project.id
        )
        response.headers["Idempotent-Replayed"] = "true"
    else:
        state = CommandState(
            id=submitted.command_id,
            project=project.id,
            command=body.command,
            priority=body.priority,
            status="queued",
            requested_at=datetime.now(UTC),
            timeout_s=body.timeout_s or project.default_timeout_s,
        )
    response.headers["Location"] = f"/commands/{state.id}"
    return Envelope(data=CommandOut.of(state))


@router.get("/commands/{command_id}", response_model=Envelope[CommandOut])
async def get_command(
    command_id: str,
    principal: PrincipalDep,
    services: ServicesDep,
) -> Envelope[CommandOut]:
    state = await command_service.get_state(services.command_log, principal, command_id)
    return Envelope(data=CommandOut.of(state))


@router.post("/commands/{command_id}/cancel", status_code=202, response_model=Envelope[CommandOut])
async def cancel(
    command_id: str,
    principal: PrincipalDep,
    services: ServicesDep,
) -> Envelope[CommandOut]:
    state = await command_service.cancel(services.command_log, principal, command_id)
    return Envelope(data=CommandOut.of(state))
