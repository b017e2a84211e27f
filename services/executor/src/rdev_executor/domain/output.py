"""Turns raw pipe chunks into numbered line batches. Standard library only.

Lines of both streams share one numbering, in the order they were read. A batch
holds lines of one stream; a line from the other stream closes it, so batches
replay in exactly the order the lines were produced. Invalid UTF-8 is replaced,
never fatal; a line longer than `max_line_chars` is split and its pieces flagged
`partial`; a bare carriage return (progress bars) ends a line flagged `cr`, which
the next line overwrites on a terminal; past `cap_bytes` output is dropped and the
run is marked truncated. Secret values are masked before a line leaves here, also
when a secret arrives split across two reads.

Plain output (no carriage return, no secret to mask, no line near the length limit)
is kept as blocks of whole lines joined by "\n", as read: a batch of thousands of
short lines costs a few string operations, not a Python object per line.
"""

from __future__ import annotations

import codecs
import re
from bisect import bisect_left
from dataclasses import dataclass, field
from itertools import accumulate

from rdev_executor.domain.redaction import Redactor

LINE_END = re.compile(r"\r\n|\n|\r")


@dataclass
class Batch:
    """Consecutive lines of one stream; `parts` each hold one or more whole lines."""

    stream: str
    first_line: int
    parts: list[str] = field(default_factory=list)
    count: int = 0
    partial: list[int] = field(default_factory=list)
    cr: list[int] = field(default_factory=list)
    size: int = 0

    @property
    def text(self) -> str:
        """The batch's lines joined by "\n"."""
        return "\n".join(self.parts)

    @property
    def lines(self) -> list[str]:
        return self.text.split("\n") if len(self.parts) < self.count else list(self.parts)

    def halves(self) -> tuple[Batch, Batch]:
        """The batch as two consecutive batches of (about) half its lines each."""
        lines, mid = self.lines, self.count // 2
        if mid == 0:
            raise ValueError("a batch of one line cannot be split")
        return self._slice(lines, 0, mid), self._slice(lines, mid, self.count)

    def _slice(self, lines: list[str], start: int, stop: int) -> Batch:
        part = lines[start:stop]
        return Batch(
            stream=self.stream,
            first_line=self.first_line + start,
            parts=part,
            count=len(part),
            partial=[i - start for i in self.partial if start <= i < stop],
            cr=[i - start for i in self.cr if start <= i < stop],
            size=sum(map(len, part)) + len(part),
        )


@dataclass
class _StreamState:
    decoder: codecs.IncrementalDecoder
    tail: str = ""


class OutputBatcher:
    def __init__(
        self,
        max_line_chars: int,
        batch_bytes: int,
        cap_bytes: int,
        redactor: Redactor | None = None,
    ) -> None:
        self.max_line_chars = max_line_chars
        self.redact = redactor or Redactor([])
        self.batch_bytes = batch_bytes
        self.cap_bytes = cap_bytes
        self.lines = 0
        self.bytes = 0
        self.truncated = False
        self.dropping = False
        self.dropped_bytes = 0  # read after output had to be dropped (`stop_accepting`)
        self._streams = {
            name: _StreamState(codecs.getincrementaldecoder("utf-8")(errors="replace"))
            for name in ("stdout", "stderr")
        }
        self._batch: Batch | None = None
        self._ready: list[Batch] = []

    def feed(self, stream: str, chunk: bytes) -> list[Batch]:
        """Add raw bytes of a stream; returns the batches that filled up."""
        if self._accept(len(chunk)):
            state = self._streams[stream]
            text = state.tail + state.decoder.decode(chunk)
            # A trailing "\r" may be the first half of "\r\n": keep it for the next read.
            held = "\r" if text.endswith("\r") else ""
            text = text.removesuffix("\r")
            if "\r" not in text:
                cut = text.rfind("\n")
                body, state.tail = text[: max(cut, 0)], text[cut + 1 :] + held
                if cut >= 0:
                    if self._plain(body):
                        self._add_block(stream, body)
                    else:
                        self._add_lines(stream, body.split("\n"))
                self._split_long_tail(stream, state)
                return self._take()
            start = 0
            for match in LINE_END.finditer(text):
                self._add_whole(
                    stream, self.redact(text[start : match.start()]), match.group() == "\r"
                )
                start = match.end()
            state.tail = text[start:] + held
            self._split_long_tail(stream, state)
        return self._take()

    def _add_whole(self, stream: str, line: str, cr: bool, partial: bool = False) -> None:
        while len(line) > self.max_line_chars:
            self._add(stream, line[: self.max_line_chars], partial=True)
            line = line[self.max_line_chars :]
        self._add(stream, line, partial=partial, cr=cr)

    def _split_long_tail(self, stream: str, state: _StreamState) -> None:
        # Cut only where no partly received secret can straddle the cut.
        while len(state.tail) >= self.max_line_chars + self.redact.longest:
            state.tail = self.redact(state.tail)
            if len(state.tail) < self.max_line_chars + self.redact.longest:
                break
            self._add(stream, state.tail[: self.max_line_chars], partial=True)
            state.tail = state.tail[self.max_line_chars :]

    def flush(self, tails: bool) -> list[Batch]:
        """The open batch; with `tails`, also unterminated lines (flagged partial)."""
        if tails:
            for stream, state in self._streams.items():
                text = self.redact(state.tail)
                keep = self.redact.unsafe_suffix(text)
                if text[: len(text) - keep]:
                    self._add(stream, text[: len(text) - keep], partial=True)
                state.tail = text[len(text) - keep :]
        self._close()
        return self._take()

    def finish(self, cut: bool = False) -> list[Batch]:
        """At end of output: the decoders' remainders and every last line. With `cut`
        (the output was closed, not ended), an unterminated last line is flagged partial."""
        for stream, state in self._streams.items():
            rest = state.tail + state.decoder.decode(b"", final=True)
            state.tail = ""
            if rest:
                line = self.redact(rest.removesuffix("\r"))
                if cut:
                    self._add_whole(stream, line, cr=False, partial=True)
                else:
                    self._add_whole(stream, line, cr=False)
        self._close()
        return self._take()

    def stop_accepting(self) -> None:
        """Drop the rest of the output (it cannot be kept): what is held back and every
        later read, counted in `dropped_bytes`; the run is truncated."""
        self.dropping = self.truncated = True
        held = sum(len(state.tail.encode()) for state in self._streams.values())
        for state in self._streams.values():
            state.tail = ""
        for batch in [*self._ready, *([self._batch] if self._batch else [])]:
            held += len(batch.text.encode()) + 1
            self.lines -= batch.count
        self._ready, self._batch = [], None
        self.dropped_bytes += held
        self.bytes = max(self.bytes - held, 0)  # `bytes` counts what is kept

    def _accept(self, size: int) -> bool:
        if self.dropping:
            self.dropped_bytes += size
            return False
        if self.truncated:
            return False
        if self.bytes + size > self.cap_bytes:
            self.truncated = True
            return False
        self.bytes += size
        return True

    def _plain(self, body: str) -> bool:
        """True if `body` can be kept as one block: nothing to mask, no over-long line.

        No line is longer than the limit if every aligned window of half the limit
        holds a newline (a longer line would cover one such window whole): a few
        `find` calls instead of measuring every line.
        """
        if self.redact.longest:
            return False
        window = (self.max_line_chars + 1) // 2
        return len(body) <= self.max_line_chars or all(
            body.find("\n", start, start + window) >= 0
            for start in range(0, len(body) - window + 1, window)
        )

    def _add_block(self, stream: str, body: str) -> None:
        """Whole lines joined by "\n", none too long, as parts of batches."""
        rest: str | None = body
        while rest is not None:
            batch = self._batch
            if batch is None or batch.stream != stream:
                self._close()
                batch = self._batch = Batch(stream=stream, first_line=self.lines + 1)
            # The first line that brings the batch to its size closes it.
            end = rest.find("\n", max(self.batch_bytes - batch.size - 1, 0))
            part, rest = (rest, None) if end < 0 else (rest[:end], rest[end + 1 :])
            count = part.count("\n") + 1
            batch.parts.append(part)
            batch.count += count
            batch.size += len(part) + 1
            self.lines += count
            if batch.size >= self.batch_bytes:
                self._close()

    def _add_lines(self, stream: str, lines: list[str]) -> None:
        """Many plain lines at once: list slices instead of a Python step per line."""
        if not lines:
            return
        if self.redact.longest:
            lines = self.redact("\n".join(lines)).split("\n")
        sizes = [n + 1 for n in map(len, lines)]
        if max(sizes) > self.max_line_chars + 1:
            for line in lines:
                self._add_whole(stream, line, cr=False)
            return
        ends = list(accumulate(sizes))
        done = 0
        while done < len(lines):
            batch = self._batch
            if batch is None or batch.stream != stream:
                self._close()
                batch = self._batch = Batch(stream=stream, first_line=self.lines + 1)
            base = ends[done - 1] if done else 0
            # The first line that brings the batch to its size closes it.
            stop = bisect_left(ends, base + self.batch_bytes - batch.size, lo=done) + 1
            stop = min(stop, len(lines))
            batch.parts.extend(lines[done:stop])
            batch.count += stop - done
            batch.size += ends[stop - 1] - base
            self.lines += stop - done
            done = stop
            if batch.size >= self.batch_bytes:
                self._close()

    def _add(self, stream: str, line: str, partial: bool = False, cr: bool = False) -> None:
        batch = self._batch
        if batch is None or batch.stream != stream:
            self._close()
            batch = self._batch = Batch(stream=stream, first_line=self.lines + 1)
        if partial:
            batch.partial.append(batch.count)
        if cr:
            batch.cr.append(batch.count)
        batch.parts.append(line)
        batch.count += 1
        batch.size += len(line) + 1
        self.lines += 1
        if batch.size >= self.batch_bytes:
            self._close()

    def _close(self) -> None:
        if self._batch is not None and self._batch.count:
            self._ready.append(self._batch)
        self._batch = None

    def _take(self) -> list[Batch]:
        ready, self._ready = self._ready, []
        return ready

    @property
    def open_batch_size(self) -> int:
        return self._batch.size if self._batch else 0

    @property
    def has_tail(self) -> bool:
        return any(state.tail for state in self._streams.values())
