"""Output events: binary mode (v2) on the wire, JSON (v1) still read, the same text from both."""

from __future__ import annotations

import pytest

from rdev_api.entrypoints.logs import _jsonl, _text
from rdev_common.events import OUTPUT_TYPE, CloudEvent, CommandOutput, OutputBatch

CASES = [
    ["a", "b", ""],
    ["", ""],
    [""],
    ['x"y'],
    ["back\\slash", "n"],
    ["ünï", 'c,","d'],
    ["tab\there", "\x1b[31mred\x1b[0m"],
    ["]", '"]', "[", '"lines":["'],
    ["\u2028 line separator", "\ufffd replaced"],
]


def v2(lines: list[str], **flags: tuple[int, ...]) -> OutputBatch:
    text = "\n".join(lines).encode()
    return OutputBatch(command_id="c1", stream="stderr", first_line=7, text=text, **flags)


def v1_message(lines: list[str], partial: list[int], cr: list[int]) -> bytes:
    output = CommandOutput(
        command_id="c1", stream="stderr", first_line=7, lines=lines, partial=partial, cr=cr
    )
    return CloudEvent.wrap(output, source="rdev/old", subject="c1", project="p").to_bytes()


@pytest.mark.parametrize("lines", CASES)
@pytest.mark.parametrize(("partial", "cr"), [((), ()), ((0,), ()), ((), (0,))])
def test_both_content_modes_read_back_as_the_same_batch(
    lines: list[str], partial: tuple[int, ...], cr: tuple[int, ...]
) -> None:
    batch = v2(lines, partial=partial, cr=cr)
    headers, payload = batch.message(source="rdev/executor/h", project="p", event_id="e1")
    assert payload == "\n".join(lines).encode()  # the text itself, nothing escaped
    from_wire = OutputBatch.from_message(payload, headers)
    from_v1 = OutputBatch.from_message(v1_message(lines, list(partial), list(cr)), None)
    assert from_wire == from_v1 == batch
    assert from_wire.lines == lines
    assert _text(from_wire) == _text(from_v1)
    assert _jsonl(from_wire) == _jsonl(from_v1)


def test_the_headers_are_the_cloudevents_attributes() -> None:
    headers, _ = v2(["x"] * 3, partial=(0, 1), cr=(2,)).message(
        source="rdev/executor/h", project="demo", event_id="e1", traceparent="00-ab-cd-01"
    )
    assert headers == {
        "ce-specversion": "1.0",
        "ce-id": "e1",
        "ce-source": "rdev/executor/h",
        "ce-type": OUTPUT_TYPE,
        "ce-subject": "c1",
        "ce-time": headers["ce-time"],
        "content-type": "text/plain; charset=utf-8",
        "ce-project": "demo",
        "ce-stream": "stderr",
        "ce-firstline": "7",
        "ce-partial": "0-1",
        "ce-cr": "2",
        "ce-traceparent": "00-ab-cd-01",
    }
    assert headers["ce-time"].endswith("Z")  # RFC 3339 in UTC, as the JSON events write it


def test_a_source_outside_printable_ascii_is_percent_encoded_and_read_back() -> None:
    source = 'rdev/executor/hôte "a" 100%'
    headers, payload = v2(["x"]).message(source=source, project="p")
    assert headers["ce-source"].isascii()
    assert '"' not in headers["ce-source"]
    event = CloudEvent.from_message(payload, headers)
    assert event.source == source
    assert event.type == OUTPUT_TYPE
    assert event.data["text"] == "x"
    assert event.data["first_line"] == 7


def test_a_structured_event_is_read_from_its_payload() -> None:
    raw = v1_message(["a"], [], [])
    assert CloudEvent.from_message(raw, {"Nats-Msg-Id": "x"}) == CloudEvent.from_bytes(raw)


def test_text_ends_split_lines_without_a_newline_and_progress_lines_with_cr() -> None:
    batch = v2(["abc", "def", "10%", "20%", "done"], partial=(0,), cr=(2, 3))
    assert _text(batch) == b"abcdef\n10%\r20%\rdone\n"
    assert _text(v2(["1", "2"])) == b"1\n2\n"


@pytest.mark.parametrize(
    ("indices", "header"),
    [((0,), "0"), ((0, 1, 2, 3), "0-3"), ((1, 3, 4, 5, 9), "1,3-5,9"), ((7, 8), "7-8")],
)
def test_flag_lists_travel_as_ranges(indices: tuple[int, ...], header: str) -> None:
    headers, payload = v2(["x"] * 10, cr=indices).message(source="s", project="p")
    assert headers["ce-cr"] == header
    assert OutputBatch.from_message(payload, headers).cr == indices


def test_a_payload_that_is_not_utf8_still_reads() -> None:
    batch = OutputBatch(command_id="c1", stream="stdout", first_line=1, text=b"ok\n\xff\xfe")
    assert batch.lines == ["ok", "\ufffd\ufffd"]
    headers, payload = batch.message(source="s", project="p")
    assert CloudEvent.from_message(payload, headers).data["text"] == "ok\n\ufffd\ufffd"
