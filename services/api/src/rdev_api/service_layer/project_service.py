"""Use cases on projects: create, read, change, delete, and the command policy.

Secrets are write-only: stored, handed to executors through the secret store, never
returned, never in an event (only their names), never logged.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import structlog

from rdev_api.domain.model import Principal, Project, Scope
from rdev_api.domain.policy import refusal
from rdev_api.service_layer import admin_events
from rdev_api.service_layer.auth import require_project, require_scope
from rdev_api.service_layer.ports import ActiveCommands, CommandLog, SecretStore, UnitOfWork
from rdev_common import validation
from rdev_common.errors import Conflict, NotFound, ValidationFailed
from rdev_common.events import CommandCancelRequested, ProjectDeleted

log = structlog.get_logger()

UNSET: Any = object()
MAX_CONCURRENCY = 1000
MAX_DEFAULT_TIMEOUT_S = 7 * 86400.0


@dataclass(frozen=True)
class ProjectChanges:
    """A partial update. `env` and `secrets` merge: a `None` value deletes that name."""

    workdir: Any = UNSET
    kubernetes: Any = UNSET
    env: Any = UNSET
    secrets: Any = UNSET
    max_concurrency: Any = UNSET
    default_timeout_s: Any = UNSET
    command_policy: Any = UNSET

    def given(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not UNSET}


def _merge(current: dict[str, str], patch: dict[str, str | None]) -> dict[str, str]:
    merged = dict(current)
    for name, value in patch.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    return merged


def _policy(value: dict[str, Any] | None) -> dict[str, Any]:
    value = value or {}
    unknown = set(value) - {"allow", "deny", "allow_env"}
    if unknown:
        raise ValidationFailed(
            "command_policy has only `allow`, `deny` and `allow_env`", field="command_policy"
        )
    policy: dict[str, Any] = {
        "allow": validation.patterns(list(value.get("allow") or []), "command_policy.allow"),
        "deny": validation.patterns(list(value.get("deny") or []), "command_policy.deny"),
    }
    if value.get("allow_env"):
        policy["allow_env"] = validation.allowed_env(list(value["allow_env"]))
    return policy


def _apply(project: Project, changes: dict[str, Any], now: datetime) -> Project:
    """The project with `changes` validated and applied."""
    p = project
    if "workdir" in changes:
        workdir = changes["workdir"]
        p = replace(p, workdir=validation.absolute_dir(workdir) if workdir is not None else None)
    if "kubernetes" in changes:
        p = replace(p, kubernetes=changes["kubernetes"])
    if "command_policy" in changes:  # first: its allow_env applies to env and secrets
        p = replace(p, command_policy=_policy(changes["command_policy"]))
    allow_env = list(p.command_policy.get("allow_env") or [])
    if "env" in changes:
        validation.env_policy(changes["env"] or {}, allow_env, "env")
        p = replace(p, env=validation.env_map(_merge(p.env, changes["env"] or {}), "env"))
    if "secrets" in changes:
        validation.env_policy(changes["secrets"] or {}, allow_env, "secrets")
        merged = _merge(p.secrets, changes["secrets"] or {})
        p = replace(p, secrets=validation.env_map(merged, "secrets"))
    if "max_concurrency" in changes:
        limit = validation.int_range(changes["max_concurrency"], "max_concurrency", 1, 1000)
        p = replace(p, max_concurrency=limit)
    if "default_timeout_s" in changes:
        value = validation.timeout(
            changes["default_timeout_s"], MAX_DEFAULT_TIMEOUT_S, "default_timeout_s"
        )
        p = replace(p, default_timeout_s=value)
    if p.workdir is None and p.kubernetes is None:
        raise ValidationFailed("a project needs a workdir or a kubernetes spec", field="workdir")
    return replace(p, updated_at=now)


async def current_secrets(uow: UnitOfWork, project_id: str) -> dict[str, str] | None:
    """A project's secrets as the database holds them now (None: no such project)."""
    async with uow:
        project = await uow.projects.get_for_update(project_id)  # never from a cache
    return dict(project.secrets) if project is not None else None


async def _publish_secrets(
    store: SecretStore | None, uow: UnitOfWork, project_id: str, changed: bool
) -> None:
    if store is not None and changed:
        await store.sync(project_id, lambda: current_secrets(uow, project_id))


async def create_project(
    uow: UnitOfWork,
    principal: Principal,
    *,
    project_id: str,
    workdir: str | None = None,
    env: dict[str, str] | None = None,
    now: datetime,
    changes: ProjectChanges | None = None,
    secret_store: SecretStore | None = None,
) -> Project:
    require_scope(principal, Scope.PROJECTS_WRITE)
    validation.project_id(project_id)
    require_project(principal, project_id)
    given = {"workdir": workdir, "env": env or {}, **(changes.given() if changes else {})}
    blank = Project(id=project_id, workdir=None, created_at=now, updated_at=now)
    project = _apply(blank, given, now)
    async with uow:
        if await uow.projects.get_for_update(project.id) is not None:
            raise Conflict(f"project {project.id!r} already exists", field="id")
        await uow.projects.add(project)
        await admin_events.record(
            uow,
            admin_events.project_created(project),
            aggregate=project.id,
            principal=principal,
            project=project.id,
        )
        await uow.commit()
    log.info("project created", project=project.id)
    await _publish_secrets(secret_store, uow, project.id, bool(project.secrets))
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


async def update_project(
    uow: UnitOfWork,
    principal: Principal,
    project_id: str,
    changes: ProjectChanges,
    now: datetime,
    secret_store: SecretStore | None = None,
) -> Project:
    require_scope(principal, Scope.PROJECTS_WRITE)
    given = changes.given()
    async with uow:
        current = await uow.projects.get_for_update(project_id)
        if current is None or not principal.key.may_see(project_id):
            raise NotFound(f"project {project_id!r} not found", field="project")
        project = _apply(current, given, now)
        await uow.projects.update(project)
        event = admin_events.project_updated(project, sorted(given))
        await admin_events.record(
            uow, event, aggregate=project.id, principal=principal, project=project.id
        )
        await uow.commit()
    log.info("project updated", project=project.id, changed=sorted(given))
    await _publish_secrets(secret_store, uow, project.id, "secrets" in given)
    return project


async def delete_project(
    uow: UnitOfWork,
    principal: Principal,
    project_id: str,
    *,
    force: bool,
    active: ActiveCommands | None,
    command_log: CommandLog | None = None,
    secret_store: SecretStore | None = None,
) -> list[str]:
    """Delete the project; refused while commands are queued or running unless `force`,
    which cancels them. Returns the ids of the commands that were cancelled."""
    require_scope(principal, Scope.PROJECTS_WRITE)
    await get_project(uow, principal, project_id)
    running = await active.of_project(project_id) if active is not None else []
    if running and not force:
        raise Conflict(
            f"project {project_id!r} has {len(running)} queued or running command(s); "
            "cancel them or delete with ?force=true",
            field="project",
            commands=running[:20],
        )
    async with uow:
        if await uow.projects.get_for_update(project_id) is None:
            raise NotFound(f"project {project_id!r} not found", field="project")
        await uow.projects.remove(project_id)
        await admin_events.record(
            uow,
            ProjectDeleted(project=project_id, forced=bool(running)),
            aggregate=project_id,
            principal=principal,
            project=project_id,
        )
        await uow.commit()
    log.info("project deleted", project=project_id, cancelled=len(running))
    if command_log is not None:
        for command_id in running:
            await command_log.cancel(
                CommandCancelRequested(
                    command_id=command_id, project=project_id, actor=principal.key.id
                )
            )
    if secret_store is not None:
        await secret_store.remove(project_id)
    return running


def enforce_command_policy(project: Project, command: str) -> None:
    """422 naming `command` when the project's policy refuses it."""
    reason = refusal(project.command_policy, command)
    if reason is not None:
        raise ValidationFailed(f"command refused: {reason}", field="command")
