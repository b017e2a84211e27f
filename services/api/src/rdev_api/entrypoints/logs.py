"""A run's whole log as text/plain or JSON lines, optionally following it live."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson

from rdev_api.service_layer.ports import RunReader
from rdev_common import subjects
from rdev_common.events import CommandCompleted, OutputBatch, decode_run_event


def _text(batch: OutputBatch) -> bytes:
    """Lines as the command wrote them: split lines rejoined, progress lines ended by CR.

    A batch with no split or progress line is its payload and a newline: no copy
    per line.
    """
    if not batch.partial and not batch.cr:
        return batch.text + b"\n"
    ends = dict.fromkeys(batch.partial, "")
    ends.update(dict.fromkeys(batch.cr, "\r"))
    return "".join(line + ends.get(i, "\n") for i, line in enumerate(batch.lines)).encode()


def _jsonl(batch: OutputBatch) -> bytes:
    partial, cr = set(batch.partial), set(batch.cr)
    return b"".join(
        orjson.dumps(
            {
                "n": batch.first_line + i,
                "stream": batch.stream,
                "line": line,
                **({"partial": True} if i in partial else {}),
                **({"cr": True} if i in cr else {}),
            }
        )
        + b"\n"
        for i, line in enumerate(batch.lines)
    )


def _complete(done: CommandCompleted) -> dict[str, object]:
    return {
        "exit_code": done.exit_code,
        "reason": done.reason.value,
        "duration_ms": done.duration_ms,
        "lines": done.lines,
        "bytes": done.bytes,
        "truncated": done.truncated,
    }


async def run_log(
    reader: RunReader, project: str, command_id: str, fmt: str, follow: bool
) -> AsyncIterator[bytes]:
    render = _jsonl if fmt == "jsonl" else _text
    async for stored in reader.events(subjects.run_events(project, command_id), 1, follow=follow):
        kind = subjects.run_kind(stored.subject)
        if kind == "output":
            yield render(OutputBatch.from_message(stored.data, stored.headers))
        elif kind == "completed":
            done = decode_run_event(kind, stored.data)
            if fmt == "jsonl" and isinstance(done, CommandCompleted):
                yield orjson.dumps({"complete": _complete(done)}) + b"\n"
            return
