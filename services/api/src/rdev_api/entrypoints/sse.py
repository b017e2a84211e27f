"""Server-Sent Events rendering: the wire format of SSE_CLIENTS.md.

Output batches are rendered in bulk, one `output` event per line, each with the
id `<stream sequence>-<line index>` so `Last-Event-ID` resumes mid-batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import structlog

from rdev_api.service_layer.ports import RunReader, StoredEvent
from rdev_common import run_state, subjects
from rdev_common.events import (
    CommandCompleted,
    CommandProgress,
    CommandQueued,
    EventData,
    OutputBatch,
    decode_run_event,
)

FAILURE_REASONS = frozenset({"lost", "error"})
# Characters JSON strings must escape, but the newlines between a batch's lines; a
# batch without any is rendered verbatim.
# `<stream sequence>` or `<stream sequence>-<line index>`, ASCII digits only
EVENT_ID = re.compile(r"([0-9]{1,19})(?:-([0-9]{1,9}))?", re.ASCII)
NEEDS_ESCAPE_IN_LINES = re.compile(r'["\\\x00-\x09\x0b-\x1f]')


@dataclass(frozen=True)
class Position:
    """Where a stream resumes: after line `index` of the event at `seq` (-1: after the event)."""

    seq: int = 0
    index: int = -1

    @classmethod
    def parse(cls, last_event_id: str | None) -> Position:
        """The one parser of event ids: raises ValueError for an id rdev did not issue
        (`1--1`, `+1`, ` 1`, digits beyond a stream sequence)."""
        if not last_event_id:
            return cls()
        found = EVENT_ID.fullmatch(last_event_id)
        if found is None:
            raise ValueError(f"not an event id: {last_event_id[:40]!r}")
        seq, index = found.group(1), found.group(2)
        return cls(int(seq), int(index) if index is not None else -1)

    @property
    def start_seq(self) -> int:
        return self.seq if self.index >= 0 else self.seq + 1

    def __str__(self) -> str:
        return f"{self.seq}-{self.index}" if self.index >= 0 else str(self.seq)


def _json(data: Any) -> str:
    return orjson.dumps(data).decode()


def event(name: str, data: dict[str, Any], event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {_json(data)}\n\n".encode()


class Final(bytes):
    """The last chunk of a stream that ends (a run's, with its `complete`): nothing,
    not even a heartbeat, may follow it."""


def heartbeat() -> bytes:
    return event("heartbeat", {"ts": time.time()})


def render_output(seq: int, batch: OutputBatch, after_index: int, extra: str) -> bytes:
    """Every line of one `command.output` batch after `after_index`, as one chunk."""
    stream, first, partial, cr = batch.stream, batch.first_line, batch.partial, batch.cr
    text = batch.text.decode(errors="replace")
    lines = text.split("\n")
    if not partial and not cr and not NEEDS_ESCAPE_IN_LINES.search(text):
        # The common case: nothing to escape, so no JSON encoder call per line.
        pre = f"id: {seq}-"
        tail = f'","stream":"{stream}"{extra},"n":'
        return "".join(
            [
                f'{pre}{i}\nevent: output\ndata: {{"line":"{line}{tail}{first + i}}}\n\n'
                for i, line in enumerate(lines)
                if i > after_index
            ]
        ).encode()
    flags = dict.fromkeys(partial or (), ',"partial":true')
    for i in cr or ():
        flags[i] = flags.get(i, "") + ',"cr":true'
    tail = f',"stream":"{stream}"{extra},"n":'
    dumps = orjson.dumps
    parts = [
        f'id: {seq}-{i}\nevent: output\ndata: {{"line":{dumps(line).decode()}{tail}{first + i}'
        f"{flags.get(i, '')}}}\n\n"
        for i, line in enumerate(lines)
        if i > after_index
    ]
    return "".join(parts).encode()


def render_completed(seq: int, done: CommandCompleted, extra: dict[str, Any]) -> bytes:
    reason = done.reason.value
    data = {
        "exit_code": done.exit_code,
        "duration_ms": done.duration_ms,
        "reason": reason,
        "lines": done.lines,
        "truncated": done.truncated,
        **extra,
    }
    state = run_state.state_of("completed", reason, done.exit_code)
    data["state"] = state
    data["state_label"] = run_state.label(state, reason, done.exit_code)
    dropped = done.output_dropped_bytes
    if dropped:
        data["output_dropped_bytes"] = dropped
    chunk = b""
    if reason in FAILURE_REASONS or dropped:
        code = reason if reason in FAILURE_REASONS else "output_dropped"
        message = done.error or f"the run ended with reason {reason}"
        chunk = event("error", {"message": message, "code": code, **extra}, f"{seq}-0")
    return chunk + event("complete", data, str(seq))


async def command_stream(
    reader: RunReader,
    project: str,
    command_id: str,
    position: Position,
    status: str,
) -> AsyncIterator[bytes]:
    """One run's events from `position` to its `complete`, then the stream ends."""
    yield event(
        "connected", {"stream_id": command_id, "project": project, "status": status}, str(position)
    )
    async for stored in reader.events(subjects.run_events(project, command_id), position.start_seq):
        chunk, done = _render(stored, position, {}, single=True)
        if done:
            yield Final(chunk)
            return
        if chunk:
            yield chunk


async def project_stream(
    reader: RunReader, project: str, position: Position
) -> AsyncIterator[bytes]:
    """Every run event of a project, live, until the client leaves."""
    yield event(
        "connected", {"stream_id": None, "project": project, "status": "live"}, str(position)
    )
    async for stored in reader.events(subjects.project_run_events(project), position.start_seq):
        _, command_id, _ = subjects.parse_run_subject(stored.subject)
        chunk, _ = _render(stored, position, {"stream_id": command_id}, single=False)
        if chunk:
            yield chunk


LIFECYCLE_EVENTS = {
    "requested": "queued",
    "started": "started",
    "cancel_requested": "cancel_requested",
}
# Where a queued run stands: an SSE `queued` event in a run's own stream too (clients
# that do not know it ignore it, as SSE clients do with any event they do not listen to).
QUEUED_KEYS = frozenset(CommandQueued.model_fields)
# What a started run waits for (its workspace pod): a `progress` event, in the same way.
PROGRESS_KEYS = frozenset(CommandProgress.model_fields)

structlog_log = structlog.get_logger()


async def announcing(
    body: AsyncIterator[bytes], announce: Callable[[], Awaitable[bool]], every_s: float
) -> AsyncIterator[bytes]:
    """`body`, while `announce()` runs every `every_s` (first after that long, so a run
    that starts at once says nothing) until it returns False or the stream ends."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                if not await announce():
                    return
            except Exception as exc:  # the stream goes on without a position
                structlog_log.warning("queue position unavailable", error=repr(exc))

    task = asyncio.create_task(loop())
    try:
        async for chunk in body:
            yield chunk
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _render(
    stored: StoredEvent, position: Position, extra: dict[str, Any], single: bool
) -> tuple[bytes, bool]:
    kind = subjects.run_kind(stored.subject)
    if kind == "output":
        after = position.index if stored.seq == position.seq else -1
        extra_json = "".join(f',"{k}":{_json(v)}' for k, v in extra.items())
        batch = OutputBatch.from_message(stored.data, stored.headers)
        return render_output(stored.seq, batch, after, extra_json), False
    if stored.seq == position.seq:
        return b"", False
    if kind == "queued":
        queued = CommandQueued.model_validate(
            {k: v for k, v in orjson.loads(stored.data)["data"].items() if k in QUEUED_KEYS}
        )
        data = {**extra, **queued.model_dump(mode="json")}
        return event("queued", data, str(stored.seq)), False
    if kind == "progress":
        fields = orjson.loads(stored.data)["data"].items()
        progress = CommandProgress.model_validate({k: v for k, v in fields if k in PROGRESS_KEYS})
        data = {**extra, **progress.model_dump(mode="json")}
        return event("progress", data, str(stored.seq)), False
    if kind == "completed" or (not single and kind in LIFECYCLE_EVENTS):
        payload = decode_run_event(kind, stored.data)
        if isinstance(payload, CommandCompleted):
            return render_completed(stored.seq, payload, extra), True
        if isinstance(payload, EventData):
            data = payload.model_dump(mode="json")
            return event(LIFECYCLE_EVENTS[kind], {**extra, **data}, str(stored.seq)), False
    return b"", False
