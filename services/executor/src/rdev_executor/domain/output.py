"""Turns raw pipe chunks into numbered line batches. Standard library only.

Lines of both streams share one numbering, in the order they were read. A batch
holds lines of one stream; a line from the other stream closes it, so batches
replay in exactly the order the lines were produced. Invalid UTF-8 is replaced,
never fatal; a line longer than `max_line_bytes` is split and its pieces flagged
`partial`; past `cap_bytes` output is dropped and the run is marked truncated.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field


@dataclass
class Batch:
    stream: str
    first_line: int
    lines: list[str] = field(default_factory=list)
    partial: list[int] = field(default_factory=list)
    size: int = 0


@dataclass
class _StreamState:
    decoder: codecs.IncrementalDecoder
    tail: str = ""


class OutputBatcher:
    def __init__(self, max_line_bytes: int, batch_bytes: int, cap_bytes: int) -> None:
        self.max_line_chars = max_line_bytes
        self.batch_bytes = batch_bytes
        self.cap_bytes = cap_bytes
        self.lines = 0
        self.bytes = 0
        self.truncated = False
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
            *complete, state.tail = text.split("\n")
            for line in complete:
                self._add(stream, line.removesuffix("\r"))
            while len(state.tail) > self.max_line_chars:
                self._add(stream, state.tail[: self.max_line_chars], partial=True)
                state.tail = state.tail[self.max_line_chars :]
        return self._take()

    def flush(self, tails: bool) -> list[Batch]:
        """The open batch; with `tails`, also unterminated lines (flagged partial)."""
        if tails:
            for stream, state in self._streams.items():
                if state.tail:
                    self._add(stream, state.tail, partial=True)
                    state.tail = ""
        self._close()
        return self._take()

    def finish(self) -> list[Batch]:
        """At end of output: the decoders' remainders and every last line."""
        for stream, state in self._streams.items():
            rest = state.tail + state.decoder.decode(b"", final=True)
            state.tail = ""
            if rest:
                self._add(stream, rest)
        self._close()
        return self._take()

    def _accept(self, size: int) -> bool:
        if self.truncated:
            return False
        if self.bytes + size > self.cap_bytes:
            self.truncated = True
            return False
        self.bytes += size
        return True

    def _add(self, stream: str, line: str, partial: bool = False) -> None:
        batch = self._batch
        if batch is None or batch.stream != stream:
            self._close()
            batch = self._batch = Batch(stream=stream, first_line=self.lines + 1)
        if partial:
            batch.partial.append(len(batch.lines))
        batch.lines.append(line)
        batch.size += len(line) + 1
        self.lines += 1
        if batch.size >= self.batch_bytes:
            self._close()

    def _close(self) -> None:
        if self._batch is not None and self._batch.lines:
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
