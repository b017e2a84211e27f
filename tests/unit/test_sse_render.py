"""SSE rendering: every output line is one event whose data is valid JSON, on both paths."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from rdev_api.entrypoints.sse import (
    Position,
    command_stream,
    project_stream,
    render_completed,
    render_output,
)
from rdev_api.service_layer.ports import StoredEvent
from rdev_common import subjects
from rdev_common.events import (
    CloudEvent,
    CommandCompleted,
    CommandProgress,
    CommandStarted,
    EventData,
    OutputBatch,
    Reason,
)


def batch(stream: str, first_line: int, lines: list[str], **flags: tuple[int, ...]) -> OutputBatch:
    text = "\n".join(lines).encode()
    return OutputBatch(command_id="c1", stream=stream, first_line=first_line, text=text, **flags)


def parse(chunk: bytes) -> list[dict[str, object]]:
    events = []
    for block in chunk.decode().split("\n\n"):
        if not block:
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append(
            {"id": fields["id"], "event": fields["event"], "data": json.loads(fields["data"])}
        )
    return events


@pytest.mark.parametrize(
    "lines",
    [
        ["plain", "ascii", "ünïcode €"],
        ['a "quote"', "back\\slash", "tab\there", "bell\x07"],
        ["", "", "carriage\rinside"],
    ],
)
def test_each_line_is_an_event_with_its_number_and_id(lines: list[str]) -> None:
    events = parse(render_output(42, batch("stdout", 10, lines), -1, ""))
    assert [e["data"]["line"] for e in events] == lines  # type: ignore[index]
    assert [e["data"]["n"] for e in events] == list(range(10, 10 + len(lines)))  # type: ignore[index]
    assert [e["id"] for e in events] == [f"42-{i}" for i in range(len(lines))]
    assert {e["event"] for e in events} == {"output"}


def test_resuming_inside_a_batch_skips_the_lines_already_seen() -> None:
    chunk = render_output(7, batch("stderr", 1, ["a", "b", "c"]), Position.parse("7-1").index, "")
    assert [e["data"]["line"] for e in parse(chunk)] == ["c"]  # type: ignore[index]


def test_flags_and_extra_fields() -> None:
    data = batch("stdout", 1, ["x" * 4, "y", "10%"], partial=(0,), cr=(2,))
    events = parse(render_output(3, data, -1, ',"stream_id":"c1"'))
    assert [e["data"].get("partial") for e in events] == [True, None, None]  # type: ignore[union-attr]
    assert [e["data"].get("cr") for e in events] == [None, None, True]  # type: ignore[union-attr]
    assert {e["data"]["stream_id"] for e in events} == {"c1"}  # type: ignore[index]


def test_a_lost_run_is_announced_by_error_then_complete() -> None:
    done = CommandCompleted(
        command_id="c1",
        project="p",
        exit_code=255,
        duration_ms=5,
        reason=Reason.LOST,
        error="executor died",
    )
    chunk = render_completed(9, done, {})
    events = parse(chunk)
    assert [e["event"] for e in events] == ["error", "complete"]
    assert events[0]["data"] == {"message": "executor died", "code": "lost"}
    assert events[1]["data"]["exit_code"] == 255  # type: ignore[index]


def test_position_parsing() -> None:
    assert Position.parse(None).start_seq == 1
    assert Position.parse("5").start_seq == 6
    assert Position.parse("5-3").start_seq == 5
    with pytest.raises(ValueError):
        Position.parse("five")


def test_subjects_and_run_events_are_parsed_by_the_contract() -> None:
    from rdev_common import streams, subjects
    from rdev_common.events import CloudEvent, CommandStarted, Priority, decode_run_event

    assert subjects.run_kind(subjects.run_event("p", "c1", "completed")) == "completed"
    assert subjects.parse_command_subject(subjects.command(Priority.HIGH, "p", "c1")) == (
        Priority.HIGH,
        "p",
        "c1",
    )
    assert subjects.admin_entity(subjects.admin("api_key", "created")) == "api_key"
    with pytest.raises(ValueError):
        subjects.admin_entity(subjects.run_event("p", "c1", "started"))
    assert streams.priority_of_durable(streams.executor_durable(Priority.LOW)) is Priority.LOW
    assert streams.priority_of_durable("webhooks-runs") is None
    started = CommandStarted(command_id="c1", project="p", executor="x")
    raw = CloudEvent.wrap(started, source="s", subject="c1").to_bytes()
    # A field a newer producer added is ignored, not an error.
    newer = raw.replace(b'"attempt":1', b'"attempt":1,"zone":"eu"')
    assert decode_run_event("started", newer) == started


class StoredRun:
    """A RunReader over one run's stored events, as the broker would hand them out."""

    def __init__(self, events: list[tuple[str, EventData]]) -> None:
        self.stored = [
            StoredEvent(
                seq,
                subjects.run_event("demo", "c1", kind),
                CloudEvent.wrap(data, source="rdev/test", subject="c1", project="demo").to_bytes(),
            )
            for seq, (kind, data) in enumerate(events, start=1)
        ]

    async def events(
        self, filter_subject: str, start_seq: int, follow: bool = True
    ) -> AsyncIterator[StoredEvent]:
        for stored in self.stored[start_seq - 1 :]:
            yield stored

    async def last_seq(self, subject: str) -> int | None:
        return len(self.stored)


async def test_a_starting_runs_progress_is_a_progress_event_in_both_streams() -> None:
    waiting = "waiting for a node: 0/3 nodes are available"
    done = CommandCompleted(
        command_id="c1", project="demo", exit_code=0, reason=Reason.EXITED, duration_ms=5
    )
    reader = StoredRun(
        [
            ("started", CommandStarted(command_id="c1", project="demo", executor="e1")),
            ("progress", progress_event("scheduling", waiting)),
            ("progress", progress_event("pulling", "pulling image python:3.12")),
            ("completed", done),
        ]
    )
    one = parse(b"".join([c async for c in command_stream(reader, "demo", "c1", Position(), "")]))
    assert [e["event"] for e in one] == ["connected", "progress", "progress", "complete"]
    assert [e["data"]["phase"] for e in one[1:3]] == ["scheduling", "pulling"]  # type: ignore[index]
    assert one[1]["data"]["message"] == waiting  # type: ignore[index]
    assert [e["id"] for e in one[1:3]] == ["2", "3"]  # resumable like any other event
    every = parse(b"".join([c async for c in project_stream(reader, "demo", Position())]))
    assert [e["event"] for e in every] == [
        "connected",
        "started",
        "progress",
        "progress",
        "complete",
    ]
    assert {e["data"]["stream_id"] for e in every[1:]} == {"c1"}  # type: ignore[index]


def progress_event(phase: str, message: str) -> CommandProgress:
    return CommandProgress(command_id="c1", project="demo", phase=phase, message=message)
