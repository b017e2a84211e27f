"""The input channel of a run, api → executor: one core NATS request per message.

A request on `subjects.run_input(project, command_id)` carries one operation in its
headers and its bytes in the payload; only the executor running the command answers
(the others, and everyone while the run is queued, stay silent: the api times out and
tries again). docs/interactive.md says why request/reply rather than a stream.

- `data`: bytes for the command's stdin, answered once they are written into it
  (a command that does not read holds the answer back: that is the back-pressure).
- `eof`: close the command's stdin, after every `data` before it.
- `resize`: `{"cols": C, "rows": R}` for a run with a terminal; answered at once.
- `signal`: a signal name (`INT`, `TERM`, …) for the command's process group; at once.

`data` and `eof` carry `(writer, seq)`: each writer (one PUT, one attach client)
numbers its messages from 1 and sends the next only once the last is answered, so
they reach stdin in order; a retry of a message whose answer was lost is recognised
by its number and answered without writing it twice.
"""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass
from enum import StrEnum

import orjson

from rdev_common.events import TtySize

OP = "Rdev-Op"
WRITER = "Rdev-Writer"
SEQ = "Rdev-Seq"

# A message's payload at most: far under any broker's max_payload.
MAX_CHUNK = 32 * 1024
SIGNALS = {
    "INT": signal.SIGINT,
    "TERM": signal.SIGTERM,
    "HUP": signal.SIGHUP,
    "QUIT": signal.SIGQUIT,
    "KILL": signal.SIGKILL,
}
_WRITER = re.compile(r"[A-Za-z0-9_-]{1,64}")


class Op(StrEnum):
    DATA = "data"
    EOF = "eof"
    RESIZE = "resize"
    SIGNAL = "signal"


class Status(StrEnum):
    OK = "ok"
    BUSY = "busy"  # the run's input queue is full: try again shortly
    LIMIT = "limit"  # the run's input bound is reached
    CLOSED = "closed"  # stdin was closed (EOF sent, or the command closed it)
    NOT_OPEN = "not_open"  # the run has no stdin (or no terminal, for resize)
    INVALID = "invalid"


@dataclass(frozen=True)
class Message:
    op: Op
    data: bytes = b""
    writer: str = ""
    seq: int = 0

    def headers(self) -> dict[str, str]:
        headers = {OP: self.op.value}
        if self.writer:
            headers |= {WRITER: self.writer, SEQ: str(self.seq)}
        return headers

    @classmethod
    def parse(cls, headers: dict[str, str] | None, payload: bytes) -> Message:
        """The message of a request; ValueError for one that is malformed."""
        headers = headers or {}
        op = Op(headers.get(OP, ""))
        writer = headers.get(WRITER, "")
        seq = int(headers.get(SEQ, "0"))
        if op in (Op.DATA, Op.EOF) and (not _WRITER.fullmatch(writer) or seq < 1):
            raise ValueError("data and eof need a writer and a sequence number")
        if len(payload) > MAX_CHUNK:
            raise ValueError(f"more than {MAX_CHUNK} bytes in one message")
        return cls(op, payload, writer, seq)

    def size(self) -> TtySize:
        return TtySize.model_validate_json(self.data)

    def signum(self) -> int:
        name = self.data.decode(errors="replace")
        if name not in SIGNALS:
            raise ValueError(f"signal {name[:20]!r} is not one of {', '.join(SIGNALS)}")
        return SIGNALS[name]


@dataclass(frozen=True)
class Reply:
    status: Status
    message: str = ""
    written: int = 0  # bytes of input written to the run so far

    def to_bytes(self) -> bytes:
        data = {"status": self.status.value, "message": self.message, "bytes": self.written}
        return orjson.dumps(data)

    @classmethod
    def from_bytes(cls, raw: bytes) -> Reply:
        data = orjson.loads(raw)
        return cls(Status(data["status"]), str(data.get("message", "")), int(data.get("bytes", 0)))
