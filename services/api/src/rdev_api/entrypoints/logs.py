"""A run's whole log as text/plain or JSON lines, optionally following it live."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson

from rdev_api.service_layer.ports import RunReader
from rdev_common import subjects


def _text(data: dict[str, object]) -> bytes:
    """Lines as the command wrote them: split lines rejoined, progress lines ended by CR."""
    lines: list[str] = data["lines"]  # type: ignore[assignment]
    ends = dict.fromkeys(data.get("partial") or (), "")  # type: ignore[call-overload]
    ends.update(dict.fromkeys(data.get("cr") or (), "\r"))  # type: ignore[call-overload]
    if not ends:
        return ("\n".join(lines) + "\n").encode()
    return "".join(line + ends.get(i, "\n") for i, line in enumerate(lines)).encode()


_LINES = b'"lines":["'
# Quotes dropped and commas made newlines: the separators `","` of a lines array
# whose lines hold no comma (and no quote, as no backslash means) become "\n".
_SEPARATOR_COMMAS = bytes.maketrans(b",", b"\n")


class PlainText:
    """The text of one run's stored output events, read straight off their JSON where safe.

    Without a backslash anywhere in an event, no string in it holds a quote, so the
    lines array runs from `"lines":["` to its first `"]` with `","` between lines.
    With no split or progress line flagged, its text is that span with each `","`
    turned into a newline: no JSON parsing, no object per line. Otherwise, None.
    The flag lists follow the lines, so they and the array's end are searched for
    from the event's end rather than across its text.

    Replacing every `","` costs about 25 ns a line; while the run's lines hold no
    comma, one `translate` does it in half that (checked on each event: its
    newlines must number its separators). The first comma of a line's own ends the
    shortcut for the rest of the run.
    """

    def __init__(self) -> None:
        self.commas = False

    def __call__(self, raw: bytes) -> bytes | None:
        if b"\\" in raw:
            return None
        partial, cr = raw.rfind(b'"partial":[]'), raw.rfind(b'"cr":[]')
        start = raw.find(_LINES)
        if partial < 0 or cr < 0 or start < 0:
            return None
        end = raw.rfind(b'"]', start, partial) if partial > start else -1
        if end < 0:
            end = raw.find(b'"]', start)
        span = raw[start + len(_LINES) : end]
        if not self.commas:
            text = span.translate(_SEPARATOR_COMMAS, b'"')
            if len(span) - len(text) == 2 * text.count(b"\n"):
                return text + b"\n"
            self.commas = True
        return span.replace(b'","', b"\n") + b"\n"


def _jsonl(data: dict[str, object]) -> bytes:
    lines: list[str] = data["lines"]  # type: ignore[assignment]
    first: int = data["first_line"]  # type: ignore[assignment]
    stream = data["stream"]
    partial = set(data.get("partial") or ())  # type: ignore[call-overload]
    cr = set(data.get("cr") or ())  # type: ignore[call-overload]
    return b"".join(
        orjson.dumps(
            {
                "n": first + i,
                "stream": stream,
                "line": line,
                **({"partial": True} if i in partial else {}),
                **({"cr": True} if i in cr else {}),
            }
        )
        + b"\n"
        for i, line in enumerate(lines)
    )


async def run_log(
    reader: RunReader, project: str, command_id: str, fmt: str, follow: bool
) -> AsyncIterator[bytes]:
    render = _jsonl if fmt == "jsonl" else _text
    plain_text = PlainText()
    async for stored in reader.events(subjects.run_events(project, command_id), 1, follow=follow):
        kind = stored.subject.rsplit(".", 1)[1]
        if kind == "output":
            text = plain_text(stored.data) if fmt != "jsonl" else None
            yield text if text is not None else render(orjson.loads(stored.data)["data"])
        elif kind == "completed":
            if fmt == "jsonl":
                data = orjson.loads(stored.data)["data"]
                yield (
                    orjson.dumps(
                        {
                            "complete": {
                                k: data.get(k)
                                for k in (
                                    "exit_code",
                                    "reason",
                                    "duration_ms",
                                    "lines",
                                    "bytes",
                                    "truncated",
                                )
                            }
                        }
                    )
                    + b"\n"
                )
            return
