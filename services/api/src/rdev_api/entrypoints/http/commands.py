"""/projects/{id}/shell and /commands"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import StreamingResponse
from sse_starlette import EventSourceResponse

from rdev_api.domain.model import Scope
from rdev_api.entrypoints import sse
from rdev_api.entrypoints.http.deps import PrincipalDep, ServicesDep, SettingsDep
from rdev_api.entrypoints.http.events import run_stream
from rdev_api.entrypoints.http.ids import CommandId, ProjectId
from rdev_api.entrypoints.http.schemas import CommandOut, Envelope, ListEnvelope, ShellRequest
from rdev_api.entrypoints.http.stream_guard import REVOKED, guarded
from rdev_api.entrypoints.logs import run_log
from rdev_api.service_layer import command_service, project_service
from rdev_api.service_layer.auth import require_scope
from rdev_api.service_layer.ports import CommandState
from rdev_common.metrics import COMMANDS_SUBMITTED

router = APIRouter(tags=["commands"])


EVENT_STREAM = "text/event-stream"


@router.post(
    "/projects/{project_id}/shell",
    status_code=202,
    response_model=Envelope[CommandOut],
    responses={200: {"content": {EVENT_STREAM: {}}, "description": "the run's event stream"}},
)
async def submit(
    project_id: ProjectId,
    body: ShellRequest,
    principal: PrincipalDep,
    services: ServicesDep,
    settings: SettingsDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    traceparent: Annotated[str | None, Header()] = None,
    accept: Annotated[str | None, Header()] = None,
) -> Envelope[CommandOut] | EventSourceResponse:
    """Queue a command: 202 with the command once JetStream stored it.

    With `Accept: text/event-stream` the answer is instead the run's event stream
    (200), as `GET /projects/{id}/events?stream_id=<id>` gives it: one request from
    submit to `complete`. Its `connected` event and the `Location` header name the
    command; a client that loses the stream resumes with that GET and Last-Event-ID.
    """
    stream = EVENT_STREAM in (accept or "")
    if stream:  # checked before anything runs that the client could not watch
        require_scope(principal, Scope.COMMANDS_READ)
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
        stdin=body.stdin or body.tty is not None,
        tty=body.tty,
        idempotency_key=idempotency_key,
        traceparent=traceparent,
    )
    if submitted.duplicate:
        state = await command_service.get_state(
            services.command_log, principal, submitted.command_id, project.id
        )
        response.headers["Idempotent-Replayed"] = "true"
    else:
        COMMANDS_SUBMITTED.labels(priority=str(body.priority)).inc()
        state = CommandState(
            id=submitted.command_id,
            project=project.id,
            command=body.command,
            priority=body.priority,
            status="queued",
            requested_at=datetime.now(UTC),
            timeout_s=body.timeout_s or project.default_timeout_s,
            stdin=body.stdin or body.tty is not None,
            tty=body.tty,
        )
    response.headers["Location"] = f"/commands/{state.id}"
    if stream:
        headers = dict(response.headers)
        return run_stream(
            services,
            settings,
            principal,
            project.id,
            state.id,
            sse.Position(),
            state.status,
            headers,
        )
    return Envelope(data=CommandOut.of(state))


@router.get("/commands/{command_id}", response_model=Envelope[CommandOut])
async def get_command(
    command_id: CommandId,
    principal: PrincipalDep,
    services: ServicesDep,
) -> Envelope[CommandOut]:
    state = await command_service.get_state(services.command_log, principal, command_id)
    return Envelope(data=CommandOut.of(state))


@router.post("/commands/{command_id}/cancel", status_code=202, response_model=Envelope[CommandOut])
async def cancel(
    command_id: CommandId,
    principal: PrincipalDep,
    services: ServicesDep,
) -> Envelope[CommandOut]:
    state = await command_service.cancel(services.command_log, principal, command_id)
    return Envelope(data=CommandOut.of(state))


@router.post("/commands/{command_id}/rerun", status_code=202, response_model=Envelope[CommandOut])
async def rerun(
    command_id: CommandId,
    principal: PrincipalDep,
    services: ServicesDep,
    settings: SettingsDep,
    response: Response,
    traceparent: Annotated[str | None, Header()] = None,
) -> Envelope[CommandOut]:
    """Run a command again, as a new command with the same command text, priority,
    timeout, env and cwd; 202 with the new command."""
    earlier = await command_service.get_state(services.command_log, principal, command_id)
    project = await project_service.get_project(services.uow(), principal, earlier.project)
    submitted, req = await command_service.rerun(
        services.command_log,
        principal,
        project,
        command_id,
        max_timeout_s=settings.max_timeout_s,
        traceparent=traceparent,
    )
    COMMANDS_SUBMITTED.labels(priority=str(req.priority)).inc()
    response.headers["Location"] = f"/commands/{submitted.command_id}"
    state = CommandState(
        id=submitted.command_id,
        project=project.id,
        command=req.command,
        priority=req.priority,
        status="queued",
        requested_at=datetime.now(UTC),
        timeout_s=req.timeout_s,
    )
    return Envelope(data=CommandOut.of(state))


@router.get("/commands/{command_id}/output", response_model=None)
async def output(
    command_id: CommandId,
    principal: PrincipalDep,
    services: ServicesDep,
    settings: SettingsDep,
    format: Annotated[Literal["text", "jsonl"], Query()] = "text",
    follow: bool = False,
) -> StreamingResponse:
    """The whole log: text/plain, or JSON lines; `follow=true` streams until the run ends."""
    state = await command_service.get_state(services.command_log, principal, command_id)
    media = "application/x-ndjson" if format == "jsonl" else "text/plain; charset=utf-8"
    live = follow and state.status != "completed"
    body = run_log(services.run_reader, state.project, command_id, format, live)
    if live:  # ends, like an event stream, once the key may no longer read it
        farewell = (lambda: orjson.dumps({"error": REVOKED}) + b"\n") if format == "jsonl" else None
        body = guarded(
            body,
            services,
            principal,
            settings.stream_auth_check_s,
            settings.heartbeat_s,
            heartbeat=None,
            farewell=farewell,
        )
    return StreamingResponse(
        body, media_type=media, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


@router.get("/projects/{project_id}/commands", response_model=ListEnvelope[CommandOut])
async def list_commands(
    project_id: ProjectId,
    principal: PrincipalDep,
    services: ServicesDep,
    status: Annotated[
        str | None,
        Query(
            max_length=40,
            description="queued, running, succeeded, failed, timed out, cancelled, lost "
            "(or completed: any ended run)",
        ),
    ] = None,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> ListEnvelope[CommandOut]:
    """The project's commands, newest first; pass `next_cursor` back as `cursor`."""
    project = await project_service.get_project(services.uow(), principal, project_id)
    page, next_cursor = await command_service.history(
        services.command_log, principal, project, status=status, cursor=cursor, limit=limit
    )
    return ListEnvelope(data=[CommandOut.of(s) for s in page], next_cursor=next_cursor)
