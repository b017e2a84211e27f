"""Output events encoded and read in bulk agree with the plain JSON path, whatever the lines."""

from __future__ import annotations

import orjson
import pytest

from rdev_api.entrypoints.logs import PlainText, _text
from rdev_common.events import CloudEvent, CommandOutput, lines_json

CASES = [
    ["a", "b", ""],
    ["", ""],
    ['x"y'],
    ["back\\slash", "n"],
    ["ünï", 'c,","d'],
    ["tab\there", "\x1b[31mred\x1b[0m"],
    ["]", '"]', "[", '"lines":["'],
    ['a","b'],
    ["\u2028 line separator"],
]


def _after_commas() -> PlainText:
    """A reader that has met a line with a comma of its own: it rejoins by replacing."""
    plain_text = PlainText()
    plain_text(event(["a,b"], []).to_bytes(lines_json("a,b")))
    assert plain_text.commas
    return plain_text


def event(lines: list[str], partial: list[int]) -> CloudEvent:
    return CloudEvent.wrap(
        CommandOutput(command_id="c", stream="stdout", first_line=1, lines=lines, partial=partial),
        source="rdev/test",
        subject="c",
        project="p",
    )


@pytest.mark.parametrize("lines", CASES)
def test_lines_json_is_the_json_of_the_lines(lines: list[str]) -> None:
    assert orjson.loads(lines_json("\n".join(lines))) == lines


@pytest.mark.parametrize("lines", CASES)
@pytest.mark.parametrize("partial", [[], [0]])
def test_plain_text_is_the_parsed_text_or_declines(lines: list[str], partial: list[int]) -> None:
    ev = event(lines, partial)
    for raw in (ev.to_bytes(), ev.to_bytes(lines_json("\n".join(lines)))):
        assert CloudEvent.from_bytes(raw).payload() == ev.payload()
        for plain_text in (PlainText(), _after_commas()):
            fast = plain_text(raw)
            assert fast is None or fast == _text(orjson.loads(raw)["data"])


def test_plain_lines_take_the_bulk_path() -> None:
    raw = event(["1", "2", "", "ü"], []).to_bytes(lines_json("1\n2\n\nü"))
    assert PlainText()(raw) == "1\n2\n\nü\n".encode()


def test_plain_text_finds_the_array_whatever_order_the_fields_come_in() -> None:
    flags_first = b'{"data":{"partial":[],"cr":[],"lines":["a]","[b","c"],"first_line":1}}'
    flags_last = b'{"data":{"first_line":1,"lines":["a]","[b","c"],"partial":[],"cr":[]}}'
    for raw in (flags_first, flags_last):
        assert PlainText()(raw) == b"a]\n[b\nc\n" == _text(orjson.loads(raw)["data"])


def test_commas_of_the_lines_are_told_from_the_separators() -> None:
    plain_text = PlainText()
    for lines in (["1", "2"], ["", ""], [""], ["x"], ["a,b", "c"], ["d", "e"], [",", ""]):
        raw = event(lines, []).to_bytes(lines_json("\n".join(lines)))
        assert plain_text(raw) == "".join(f"{line}\n" for line in lines).encode()
    # From the first line with a comma on, the run is rejoined the general way.
    assert plain_text.commas
