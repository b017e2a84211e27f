"""/projects"""

from __future__ import annotations

from fastapi import APIRouter

from rdev_api.entrypoints.http.deps import PrincipalDep, ServicesDep
from rdev_api.entrypoints.http.schemas import Envelope, ListEnvelope, ProjectCreate, ProjectOut
from rdev_api.service_layer import project_service

router = APIRouter(tags=["projects"])


@router.post("/projects", status_code=201, response_model=Envelope[ProjectOut])
async def create_project(
    body: ProjectCreate,
    principal: PrincipalDep,
    services: ServicesDep,
) -> Envelope[ProjectOut]:
    project = await project_service.create_project(
        services.uow(),
        principal,
        project_id=body.id,
        workdir=body.workdir,
        env=body.env,
        now=services.clock(),
    )
    return Envelope(data=ProjectOut.of(project))


@router.get("/projects", response_model=ListEnvelope[ProjectOut])
async def list_projects(principal: PrincipalDep, services: ServicesDep) -> ListEnvelope[ProjectOut]:
    projects = await project_service.list_projects(services.uow(), principal)
    return ListEnvelope(data=[ProjectOut.of(p) for p in projects])


@router.get("/projects/{project_id}", response_model=Envelope[ProjectOut])
async def get_project(
    project_id: str,
    principal: PrincipalDep,
    services: ServicesDep,
) -> Envelope[ProjectOut]:
    project = await project_service.get_project(services.uow(), principal, project_id)
    return Envelope(data=ProjectOut.of(project))
