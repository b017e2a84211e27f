"""Admin events: recorded in the outbox, in the transaction of the change they describe."""

from __future__ import annotations

from rdev_api.domain.model import ApiKey, Principal, Project
from rdev_api.service_layer.ports import UnitOfWork
from rdev_common import subjects
from rdev_common.events import (
    ApiKeyCreated,
    CloudEvent,
    CommandPolicy,
    EventData,
    ProjectCreated,
    ProjectUpdated,
)

SOURCE = "rdev/api"


async def record(
    uow: UnitOfWork,
    payload: EventData,
    *,
    aggregate: str,
    principal: Principal | None,
    project: str | None = None,
) -> CloudEvent:
    event = CloudEvent.wrap(
        payload,
        source=SOURCE,
        subject=aggregate,
        project=project,
        actor=principal.key.id if principal else None,
    )
    await uow.outbox.add(event, subjects.admin_of(payload.kind))
    return event


def _policy(project: Project) -> CommandPolicy:
    return CommandPolicy(
        allow=list(project.command_policy.get("allow") or []),
        deny=list(project.command_policy.get("deny") or []),
    )


def project_created(project: Project) -> ProjectCreated:
    """The project without its secret values: only their names leave the database."""
    return ProjectCreated(
        project=project.id,
        workdir=project.workdir,
        kubernetes=project.kubernetes,
        env=project.env,
        secret_names=project.secret_names,
        max_concurrency=project.max_concurrency,
        default_timeout_s=project.default_timeout_s,
        command_policy=_policy(project),
    )


def project_updated(project: Project, changed: list[str]) -> ProjectUpdated:
    snapshot = project_created(project).model_dump()
    return ProjectUpdated(**snapshot, changed=changed)


def key_created(key: ApiKey) -> ApiKeyCreated:
    return ApiKeyCreated(
        key_id=key.id,
        name=key.name,
        prefix=key.prefix,
        scopes=sorted(s.value for s in key.scopes),
        projects=sorted(key.projects) if key.projects is not None else None,
        allowed_ips=list(key.allowed_ips) if key.allowed_ips is not None else None,
        expires_at=key.expires_at,
    )
