"""Use cases on projects."""

from __future__ import annotations

from datetime import datetime

from rdev_api.domain.model import Principal, Project, Scope
from rdev_api.service_layer.auth import require_scope
from rdev_api.service_layer.ports import UnitOfWork
from rdev_common import validation
from rdev_common.errors import Conflict, NotFound


async def create_project(
    uow: UnitOfWork,
    principal: Principal,
    *,
    project_id: str,
    workdir: str,
    env: dict[str, str],
    now: datetime,
) -> Project:
    require_scope(principal, Scope.PROJECTS_WRITE)
    project = Project(
        id=validation.project_id(project_id),
        workdir=validation.absolute_dir(workdir),
        env=validation.env_vars(env),
        created_at=now,
        updated_at=now,
    )
    async with uow:
        if await uow.projects.get(project.id) is not None:
            raise Conflict(f"project {project.id!r} already exists", field="id")
        await uow.projects.add(project)
        await uow.commit()
    return project


async def get_project(uow: UnitOfWork, principal: Principal, project_id: str) -> Project:
    """The project, or NotFound, also when the key may not see it."""
    if principal.key.may_see(project_id):
        async with uow:
            project = await uow.projects.get(project_id)
        if project is not None:
            return project
    raise NotFound(f"project {project_id!r} not found", field="project")


async def list_projects(uow: UnitOfWork, principal: Principal) -> list[Project]:
    async with uow:
        projects = await uow.projects.list()
    return [p for p in projects if principal.key.may_see(p.id)]
