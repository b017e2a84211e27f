"""PUT /commands/{id}/stdin: a run's standard input as a streaming request body."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from rdev_api.entrypoints.http.deps import PrincipalDep, ServicesDep
from rdev_api.entrypoints.http.ids import CommandId
from rdev_api.entrypoints.http.schemas import Envelope
from rdev_api.service_layer import input_service
from rdev_common.errors import Unavailable
from rdev_common.run_input import SIGNALS, Op

router = APIRouter(tags=["commands"])

STDIN_PATH = "/commands/{command_id}/stdin"


class StdinOut(BaseModel):
    bytes: int
    closed: bool


@router.put(STDIN_PATH, response_model=Envelope[StdinOut])
async def stdin(
    command_id: CommandId,
    request: Request,
    principal: PrincipalDep,
    services: ServicesDep,
    close: Annotated[bool, Query(description="close the run's stdin at the body's end")] = True,
) -> Envelope[StdinOut]:
    """Write the body into the run's stdin as it arrives (chunked bodies stream), and close
    stdin at its end unless `close=false`. The run must have been submitted with
    `"stdin": true`; input sent while it is queued waits for it to start. Answers once
    everything is written into the command's stdin: a command that does not read holds
    the request (and the client) back. 409 once the run ended; 413 past the per-run
    input limit (RDEV_INPUT_MAX_BYTES)."""
    if services.run_input is None:
        raise Unavailable("this api takes no run input")
    fed = await input_service.feed(
        services.run_input,
        services.command_log,
        principal,
        command_id,
        request.stream(),
        close,
    )
    return Envelope(data=StdinOut(bytes=fed.bytes, closed=fed.closed))


class ResizeIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"cols": 120, "rows": 40}]}
    )
    cols: int = Field(ge=1, le=1000)
    rows: int = Field(ge=1, le=1000)


class SignalIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"signal": "INT"}]})
    signal: str = Field(
        pattern="^(" + "|".join(SIGNALS) + ")$", description="INT, TERM, HUP, QUIT or KILL"
    )


class Applied(BaseModel):
    applied: bool


@router.post("/commands/{command_id}/resize", response_model=Envelope[Applied])
async def resize(
    command_id: CommandId, body: ResizeIn, principal: PrincipalDep, services: ServicesDep
) -> Envelope[Applied]:
    """Resize the run's terminal (a run submitted with `tty`); its foreground process gets
    SIGWINCH. Answers once applied; waits while the run is queued; 409 without a terminal."""
    if services.run_input is None:
        raise Unavailable("this api takes no run input")
    await input_service.control(
        services.run_input,
        services.command_log,
        principal,
        command_id,
        Op.RESIZE,
        body.model_dump_json().encode(),
    )
    return Envelope(data=Applied(applied=True))


@router.post("/commands/{command_id}/signal", response_model=Envelope[Applied])
async def send_signal(
    command_id: CommandId, body: SignalIn, principal: PrincipalDep, services: ServicesDep
) -> Envelope[Applied]:
    """Send a signal to the run's process group (a run submitted with stdin or `tty`)."""
    if services.run_input is None:
        raise Unavailable("this api takes no run input")
    await input_service.control(
        services.run_input,
        services.command_log,
        principal,
        command_id,
        Op.SIGNAL,
        body.signal.encode(),
    )
    return Envelope(data=Applied(applied=True))
