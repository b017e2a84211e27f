"""Use cases on commands: submit, look up, cancel."""

from __future__ import annotations

import uuid

from rdev_api.domain.model import Principal, Project, Scope
from rdev_api.service_layer.auth import require_scope
from rdev_api.service_layer.ports import CommandLog, CommandState, Submitted
from rdev_common import validation
from rdev_common.errors import Conflict, NotFound
from rdev_common.events import CommandCancelRequested, CommandRequested, Priority
from rdev_common.ids import new_id

IDEMPOTENCY_NAMESPACE = uuid.UUID("6f1c1d1e-3c1a-4e0b-9a57-2f7d2b7f0c11")


def idempotent_id(actor: str, project: str, key: str) -> str:
    """The same (key, project, Idempotency-Key) always names the same command."""
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{actor}\x00{project}\x00{key}"))


async def submit(
    log: CommandLog,
    principal: Principal,
    project: Project,
    *,
    command: str,
    priority: Priority,
    timeout_s: float | None,
    max_timeout_s: float,
    env: dict[str, str],
    cwd: str | None,
    idempotency_key: str | None,
    traceparent: str | None,
) -> Submitted:
    require_scope(principal, Scope.COMMANDS_EXECUTE)
    actor = principal.key.id
    command_id = idempotent_id(actor, project.id, idempotency_key) if idempotency_key else new_id()
    if idempotency_key and await log.state(command_id, project.id) is not None:
        return Submitted(command_id=command_id, sequence=0, duplicate=True)
    event = CommandRequested(
        command_id=command_id,
        project=project.id,
        command=validation.command_text(command),
        priority=priority,
        timeout_s=validation.timeout(timeout_s or project.default_timeout_s, max_timeout_s),
        workdir=project.workdir,
        cwd=validation.relative_cwd(cwd) if cwd else None,
        env={**project.env, **validation.env_vars(env)},
        actor=actor,
        client_ip=principal.client_ip,
        idempotency_key=idempotency_key,
    )
    event_id = command_id if idempotency_key else new_id()
    return await log.request(event, event_id, traceparent)


async def get_state(
    log: CommandLog,
    principal: Principal,
    command_id: str,
    project: str | None = None,
) -> CommandState:
    require_scope(principal, Scope.COMMANDS_READ)
    state = await log.state(command_id, project)
    if state is None or not principal.key.may_see(state.project):
        raise NotFound(f"command {command_id!r} not found", field="command_id")
    return state


async def cancel(log: CommandLog, principal: Principal, command_id: str) -> CommandState:
    require_scope(principal, Scope.COMMANDS_EXECUTE)
    state = await get_state(log, principal, command_id)
    if state.status == "completed":
        raise Conflict(f"command {command_id!r} has already completed", field="command_id")
    await log.cancel(
        CommandCancelRequested(command_id=command_id, project=state.project, actor=principal.key.id)
    )
    return state
