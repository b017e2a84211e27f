"""GET /projects/{id}/events: Server-Sent Events of one run, or of the whole project."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Response
from sse_starlette import EventSourceResponse

from rdev_api.domain.model import Principal, Scope
from rdev_api.entrypoints import sse
from rdev_api.entrypoints.http.deps import PrincipalDep, ServicesDep, SettingsDep
from rdev_api.entrypoints.http.ids import (
    EVENT_ID_PATTERN,
    EVENT_ID_WORDS,
    ProjectId,
    StreamIdQuery,
)
from rdev_api.entrypoints.http.observability import count_sse
from rdev_api.entrypoints.http.stream_guard import guarded
from rdev_api.service_layer import command_service, project_service
from rdev_api.service_layer.auth import require_scope
from rdev_api.service_layer.ports import Services
from rdev_api.settings import ApiSettings
from rdev_common import subjects
from rdev_common.errors import ValidationFailed

router = APIRouter(tags=["events"])

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@router.get("/projects/{project_id}/events", response_model=None)
async def events(
    project_id: ProjectId,
    principal: PrincipalDep,
    services: ServicesDep,
    settings: SettingsDep,
    stream_id: StreamIdQuery = None,
    last_event_id: Annotated[
        str | None, Header(max_length=64, pattern=EVENT_ID_PATTERN, description=EVENT_ID_WORDS)
    ] = None,
) -> EventSourceResponse | Response:
    require_scope(principal, Scope.COMMANDS_READ)
    project = await project_service.get_project(services.uow(), principal, project_id)
    try:
        position = sse.Position.parse(last_event_id)
    except ValueError as exc:
        raise ValidationFailed(
            "Last-Event-ID is not an event id rdev issued", field="Last-Event-ID"
        ) from exc
    if stream_id is None:
        body = sse.project_stream(services.run_reader, project.id, position)
        return _response(body, services, principal, settings)
    state = await command_service.get_state(services.command_log, principal, stream_id, project.id)
    # Only a client resuming from an event id can have seen `complete` already.
    done_at = position.seq and await services.run_reader.last_seq(
        subjects.run_event(project.id, stream_id, "completed")
    )
    if done_at and position.seq >= done_at:
        # The client has seen `complete`: 204 tells EventSource not to reconnect.
        return Response(status_code=204)
    return run_stream(services, settings, principal, project.id, stream_id, position, state.status)


def run_stream(
    services: Services,
    settings: ApiSettings,
    principal: Principal,
    project: str,
    command_id: str,
    position: sse.Position,
    status: str,
    headers: dict[str, str] | None = None,
) -> EventSourceResponse:
    """The event stream of one run, from `position` to its `complete`; while the run
    waits in the queue, its position is published (and so streamed) as it moves."""
    body = sse.command_stream(services.run_reader, project, command_id, position, status)
    if status == "queued" and services.queue is not None:
        queue = services.queue
        body = sse.announcing(
            body, lambda: queue.announce(project, command_id), settings.queue_announce_s
        )
    return _response(body, services, principal, settings, headers)


def _response(
    body: AsyncIterator[bytes],
    services: Services,
    principal: Principal,
    settings: ApiSettings,
    headers: dict[str, str] | None = None,
) -> EventSourceResponse:
    """`body` as an event stream that ends once the key may no longer read it."""
    paced = guarded(body, services, principal, settings.stream_auth_check_s, settings.heartbeat_s)
    return EventSourceResponse(
        count_sse(paced),
        headers={**SSE_HEADERS, **(headers or {})},
        ping=0,  # heartbeats come from `guarded`, in the stream's own order
        send_timeout=settings.sse_send_timeout_s,
        sep="\n",
    )
