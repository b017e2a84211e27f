"""A terminal's output as batches of stream `tty`. Standard library only.

A pseudo-terminal has one output stream, its bytes a terminal's (ANSI sequences,
"\r\n" line ends, redraws). Each read becomes a batch at once (a keystroke's echo
must not wait), its "lines" the text split at "\n" with the last piece flagged
`partial` unless the read ended with "\n": a reader that writes each line followed
by "\n" unless it is partial (as `/output` and `rdev run -t` do) gets the bytes back
as the terminal wrote them. A batch never ends inside a UTF-8 sequence or an escape
sequence (the rest waits for the next read), nor inside what could be a secret.
"""

from __future__ import annotations

import codecs
import re

from rdev_executor.domain.output import Batch, OutputBatcher, _StreamState
from rdev_executor.domain.redaction import Redactor

TTY = "tty"
# An escape sequence begun but not finished at the end of a read: ESC alone, a CSI
# (ESC [ parameters intermediates, no final byte yet), an OSC/DCS string without
# its terminator, or ESC and an intermediate byte.
INCOMPLETE_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*|[\]P_^][^\x07\x1b]*|[ -/]*)\Z")
MAX_ESCAPE_HOLD = 4096  # a "sequence" longer than this is let through as it is


def incomplete_escape(text: str) -> int:
    """How many trailing characters of `text` are an unfinished escape sequence."""
    start = text.rfind("\x1b", max(0, len(text) - MAX_ESCAPE_HOLD))
    if start < 0:
        return 0
    found = INCOMPLETE_ESCAPE.match(text, start)
    return len(text) - start if found else 0


class TtyBatcher(OutputBatcher):
    def __init__(
        self,
        max_line_chars: int,
        batch_bytes: int,
        cap_bytes: int,
        redactor: Redactor | None = None,
    ) -> None:
        super().__init__(max_line_chars, batch_bytes, cap_bytes, redactor)
        self._streams = {TTY: _StreamState(codecs.getincrementaldecoder("utf-8")("replace"))}

    def feed(self, stream: str, chunk: bytes) -> list[Batch]:
        if self._accept(len(chunk)):
            state = self._streams[TTY]
            text = self.redact(state.tail + state.decoder.decode(chunk))
            hold = max(self.redact.unsafe_suffix(text), incomplete_escape(text))
            self._emit(text[: len(text) - hold])
            state.tail = text[len(text) - hold :]
        return self._take()

    def _emit(self, text: str) -> None:
        if not text:
            return
        pieces = text.split("\n")
        ended = pieces[-1] == ""
        if ended:
            pieces.pop()
        for i, piece in enumerate(pieces):
            self._add_whole(TTY, piece, cr=False, partial=not ended and i == len(pieces) - 1)
        self._close()

    def flush(self, tails: bool) -> list[Batch]:
        if tails:
            state = self._streams[TTY]
            text, state.tail = state.tail, ""
            self._emit(text)
        self._close()
        return self._take()

    def finish(self, cut: bool = False) -> list[Batch]:
        state = self._streams[TTY]
        text, state.tail = state.tail + state.decoder.decode(b"", final=True), ""
        self._emit(self.redact(text))
        self._close()
        return self._take()
