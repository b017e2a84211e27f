"""Progress of a run that is starting, told by whichever backend starts it.

A backend does not know the event log; the runner does. While it starts a run, the
runner puts a sink in this context, and a backend reports what the run waits for
(`report("pulling", "pulling image python:3.12")`) without knowing where it goes.
Outside a run's start, or with a backend that never reports, nothing happens.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import structlog

from rdev_common.events import CommandProgress, CommandRequested
from rdev_executor.service_layer.ports import EventLog

log = structlog.get_logger()

Sink = Callable[[str, str], Awaitable[None]]

_sink: contextvars.ContextVar[Sink | None] = contextvars.ContextVar("progress_sink", default=None)


async def report(phase: str, message: str) -> None:
    """Tell the run being started what it waits for now (a no-op outside a start)."""
    sink = _sink.get()
    if sink is not None:
        await sink(phase, message)


@contextmanager
def reporting_to(sink: Sink) -> Iterator[None]:
    """Within this block (and tasks it creates), `report` goes to `sink`."""
    token = _sink.set(sink)
    try:
        yield
    finally:
        _sink.reset(token)


def run_sink(events: EventLog, req: CommandRequested, started: asyncio.Future[Any]) -> Sink:
    """A sink publishing `command.progress` for `req`, each after its `started` is
    stored (so the log keeps the order) and only when phase or message changed. A run
    whose `started` was refused, or a progress the broker will not take, says nothing."""
    last: tuple[str, str] | None = None

    async def sink(phase: str, message: str) -> None:
        nonlocal last
        if last == (phase, message):
            return
        last = (phase, message)
        try:
            await asyncio.shield(started)
            await events.publish(
                CommandProgress(
                    command_id=req.command_id, project=req.project, phase=phase, message=message
                ),
                "progress",
                project=req.project,
                command_id=req.command_id,
            )
        except Exception as exc:  # the run goes on without showing its progress
            log.info("progress not published", command_id=req.command_id, error=repr(exc))

    return sink
