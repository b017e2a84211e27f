"""Use cases on a run's input: feed its stdin, resize its terminal, signal it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from rdev_api.domain.model import Principal, Scope
from rdev_api.service_layer import command_service
from rdev_api.service_layer.auth import require_scope
from rdev_api.service_layer.ports import CommandLog, CommandState, RunInput
from rdev_common.errors import Conflict, PayloadTooLarge, ValidationFailed
from rdev_common.ids import new_id
from rdev_common.run_input import MAX_CHUNK, Message, Op, Reply, Status

# Between two tries of a message no executor answered (the run is queued, or its
# executor restarts), and after a `busy`.
RETRY_S = 0.25


@dataclass(frozen=True)
class Fed:
    bytes: int  # sent by this request
    closed: bool  # stdin closed (EOF) by it


async def open_run(log: CommandLog, principal: Principal, command_id: str) -> CommandState:
    """The run, if this principal may send it input and it takes input."""
    require_scope(principal, Scope.COMMANDS_EXECUTE)
    state = await command_service.get_state(log, principal, command_id)
    if not state.stdin:
        raise Conflict(
            f'command {command_id!r} was not started with stdin open ("stdin": true)',
            field="stdin",
        )
    if state.status == "completed":
        raise Conflict(f"command {command_id!r} has already completed", field="command_id")
    return state


class Writer:
    """One source of a run's input: its messages, numbered, each sent until answered."""

    def __init__(self, port: RunInput, log: CommandLog, state: CommandState) -> None:
        self.port = port
        self.log = log
        self.state = state
        self.id = new_id().replace("-", "")
        self.seq = 0

    async def send(self, op: Op, data: bytes = b"") -> Reply:
        """Send until the executor answers; Conflict once the run has ended."""
        numbered = op in (Op.DATA, Op.EOF)
        if numbered:
            self.seq += 1
        message = Message(op, data, self.id if numbered else "", self.seq if numbered else 0)
        while True:
            reply = await self.port.send(self.state.project, self.state.id, message)
            if reply is not None and reply.status is not Status.BUSY:
                return _checked(reply, self.state.id)
            current = await self.log.state(self.state.id, self.state.project)
            if current is None or current.status == "completed":
                raise Conflict(
                    f"command {self.state.id!r} ended before its input was written",
                    field="command_id",
                )
            await asyncio.sleep(RETRY_S)


def _checked(reply: Reply, command_id: str) -> Reply:
    if reply.status is Status.OK:
        return reply
    if reply.status is Status.LIMIT:
        raise PayloadTooLarge(reply.message, field="body")
    if reply.status is Status.INVALID:
        raise ValidationFailed(reply.message, field="body")
    raise Conflict(f"command {command_id!r}: {reply.message}", field="stdin")


async def feed(
    port: RunInput,
    log: CommandLog,
    principal: Principal,
    command_id: str,
    body: AsyncIterator[bytes],
    close: bool,
) -> Fed:
    """Write a request body into the run's stdin, in order, as it arrives; close stdin
    at its end when `close`. Waits while the run is queued."""
    state = await open_run(log, principal, command_id)
    writer = Writer(port, log, state)
    sent = 0
    async for chunk in body:
        for start in range(0, len(chunk), MAX_CHUNK):
            piece = chunk[start : start + MAX_CHUNK]
            await writer.send(Op.DATA, piece)
            sent += len(piece)
    if close:
        await writer.send(Op.EOF)
    return Fed(sent, close)


async def control(
    port: RunInput, log: CommandLog, principal: Principal, command_id: str, op: Op, data: bytes
) -> None:
    """A resize or a signal, applied once the run runs."""
    state = await open_run(log, principal, command_id)
    await Writer(port, log, state).send(op, data)
