"""Use cases on commands: submit, look up, cancel."""

from __future__ import annotations

import asyncio
import hashlib

from rdev_api.domain.model import Principal, Project, Scope
from rdev_api.service_layer.auth import require_scope
from rdev_api.service_layer.ports import CommandLog, CommandState, Submitted
from rdev_api.service_layer.project_service import enforce_command_policy
from rdev_common import run_state, validation
from rdev_common.errors import Conflict, NotFound
from rdev_common.events import (
    CommandCancelRequested,
    CommandCompleted,
    CommandRequested,
    Priority,
    Reason,
    TtySize,
)
from rdev_common.ids import new_id

# As the executor ends a run cancelled before it started: killed by SIGTERM, 128+15.
CANCELLED_BEFORE_START_EXIT = 143


def idempotency_token(actor: str, project: str, key: str) -> str:
    """The same (API key, project, Idempotency-Key) always claims the same token."""
    return hashlib.sha256(f"{actor}\x00{project}\x00{key}".encode()).hexdigest()


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
    stdin: bool = False,
    tty: TtySize | None = None,
) -> Submitted:
    require_scope(principal, Scope.COMMANDS_EXECUTE)
    # The project's allow/deny patterns: a 422 naming `command`, before anything is claimed.
    # User patterns never run on the event loop (RE2 is linear, but a 64 KiB command
    # against a hundred patterns is still work the other requests should not wait for).
    validation.command_text(command)
    if project.command_policy.get("allow") or project.command_policy.get("deny"):
        await asyncio.to_thread(enforce_command_policy, project, command)
    command_env = _command_env(project, env)
    actor = principal.key.id
    command_id = new_id()
    if idempotency_key:
        token = idempotency_token(actor, project.id, idempotency_key)
        claimed = await log.claim(token, command_id)
        # A claim made by an earlier request whose command was stored is a duplicate;
        # one whose request never got stored (it failed mid-way) is submitted again.
        if claimed != command_id and await log.state(claimed, project.id) is not None:
            return Submitted(command_id=claimed, duplicate=True)
        command_id = claimed
    # Published with Nats-Msg-Id = command id: a retry of an interrupted submit with the
    # same Idempotency-Key is de-duplicated by the broker.
    event = CommandRequested(
        command_id=command_id,
        project=project.id,
        command=validation.command_text(command),
        priority=priority,
        timeout_s=validation.timeout(timeout_s or project.default_timeout_s, max_timeout_s),
        workdir=project.workdir,
        kubernetes=project.kubernetes,
        max_concurrency=project.max_concurrency,
        cwd=validation.relative_cwd(cwd) if cwd else None,
        env={**project.env, **command_env},
        actor=actor,
        client_ip=principal.client_ip,
        idempotency_key=idempotency_key,
        stdin=stdin,
        tty=tty,
    )
    return await log.request(event, command_id, traceparent)


def _command_env(project: Project, env: dict[str, str]) -> dict[str, str]:
    validation.env_policy(env, list(project.command_policy.get("allow_env") or []))
    return validation.env_vars(env)


async def rerun(
    log: CommandLog,
    principal: Principal,
    project: Project,
    command_id: str,
    *,
    max_timeout_s: float,
    traceparent: str | None,
) -> tuple[Submitted, CommandRequested]:
    """Run a command again as it was requested: command, priority, timeout, env and cwd
    (the project's current policy applies)."""
    earlier = await log.request_of(command_id)
    if earlier is None or earlier.project != project.id:
        raise NotFound(f"command {command_id!r} not found", field="command_id")
    submitted = await submit(
        log,
        principal,
        project,
        command=earlier.command,
        priority=earlier.priority,
        timeout_s=earlier.timeout_s,
        max_timeout_s=max_timeout_s,
        env=earlier.env,
        cwd=earlier.cwd,
        idempotency_key=None,
        traceparent=traceparent,
    )
    return submitted, earlier


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
    if state.status == "queued":
        # Nothing runs yet: the run ends here, at once, and no executor starts it.
        ended = await log.end_before_start(
            CommandCompleted(
                command_id=command_id,
                project=state.project,
                exit_code=CANCELLED_BEFORE_START_EXIT,
                reason=Reason.CANCELLED,
                duration_ms=0,
                error="cancelled before it started",
            )
        )
        if ended:
            return await get_state(log, principal, command_id, state.project)
    return state


async def history(
    log: CommandLog,
    principal: Principal,
    project: Project,
    *,
    status: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[CommandState], str | None]:
    """A page of the project's commands, newest first, from the event log itself."""
    require_scope(principal, Scope.COMMANDS_READ)
    wanted = run_state.parse(status) if status is not None else None
    ids = sorted(await log.project_command_ids(project.id), reverse=True)
    if cursor:
        ids = [i for i in ids if i < cursor]
    page: list[CommandState] = []
    position = 0
    while position < len(ids) and len(page) < limit:
        chunk = ids[position : position + limit]
        position += len(chunk)
        states = await asyncio.gather(*(log.state(i, project.id) for i in chunk))
        for state in states:
            if state is not None and (wanted is None or _state(state) in wanted):
                page.append(state)
    page = page[:limit]
    more = len(page) == limit and (position < len(ids) or page[-1].id != ids[position - 1])
    return page, page[-1].id if more else None


def _state(state: CommandState) -> str:
    return run_state.state_of(state.status, state.reason, state.exit_code)
