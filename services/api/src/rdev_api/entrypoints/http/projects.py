"""/projects: create, list, read, change, delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from rdev_api.entrypoints.http.deps import PrincipalDep, ServicesDep
from rdev_api.entrypoints.http.ids import ProjectId
from rdev_api.entrypoints.http.schemas import (
    Envelope,
    ListEnvelope,
    ProjectCreateFull,
    ProjectFields,
    ProjectView,
)
from rdev_api.service_layer import project_service
from rdev_api.service_layer.project_service import ProjectChanges

router = APIRouter(tags=["projects"])


def _changes(body: ProjectFields) -> ProjectChanges:
    """Only the fields the client sent: absent means unchanged, null means cleared."""
    sent: dict[str, Any] = {}
    for name in body.model_fields_set - {"id"}:
        value = getattr(body, name)
        sent[name] = value.model_dump() if hasattr(value, "model_dump") else value
    return ProjectChanges(**sent)


@router.post("/projects", status_code=201, response_model=Envelope[ProjectView])
async def create_project(
    body: ProjectCreateFull, principal: PrincipalDep, services: ServicesDep
) -> Envelope[ProjectView]:
    project = await project_service.create_project(
        services.uow(),
        principal,
        project_id=body.id,
        now=services.clock(),
        changes=_changes(body),
        secret_store=services.secret_store,
    )
    return Envelope(data=ProjectView.of(project))


@router.get("/projects", response_model=ListEnvelope[ProjectView])
async def list_projects(
    principal: PrincipalDep, services: ServicesDep
) -> ListEnvelope[ProjectView]:
    projects = await project_service.list_projects(services.uow(), principal)
    return ListEnvelope(data=[ProjectView.of(p) for p in projects])


@router.get("/projects/{project_id}", response_model=Envelope[ProjectView])
async def get_project(
    project_id: ProjectId, principal: PrincipalDep, services: ServicesDep
) -> Envelope[ProjectView]:
    project = await project_service.get_project(services.uow(), principal, project_id)
    return Envelope(data=ProjectView.of(project))


@router.patch("/projects/{project_id}", response_model=Envelope[ProjectView])
async def update_project(
    project_id: ProjectId, body: ProjectFields, principal: PrincipalDep, services: ServicesDep
) -> Envelope[ProjectView]:
    project = await project_service.update_project(
        services.uow(),
        principal,
        project_id,
        _changes(body),
        services.clock(),
        secret_store=services.secret_store,
    )
    return Envelope(data=ProjectView.of(project))


@router.delete("/projects/{project_id}", status_code=204)
async def delete_project(
    project_id: ProjectId,
    principal: PrincipalDep,
    services: ServicesDep,
    force: Annotated[bool, Query(description="cancel queued and running commands")] = False,
) -> Response:
    """409 while the project has queued or running commands, unless `force=true`."""
    await project_service.delete_project(
        services.uow(),
        principal,
        project_id,
        force=force,
        active=services.active_commands,
        command_log=services.command_log,
        secret_store=services.secret_store,
    )
    return Response(status_code=204)
