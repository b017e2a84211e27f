"""`rdev run -t`, `rdev shell` and `rdev attach` of a terminal run: like ssh -t.

The local terminal goes raw; keystrokes stream to the run's stdin (one PUT, each read
sent as it comes), so Ctrl-C reaches the remote terminal as the byte it is and the
remote side interrupts its foreground command; SIGWINCH becomes a resize; `~.` at
the start of a line detaches, leaving the run going (`rdev attach ID` re-enters).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import termios
import threading
import tty
from collections.abc import Iterator
from typing import Any

import httpx

from rdev_cli.client import RdevClient
from rdev_cli.errors import CliError, report

ESCAPE = b"~"
LINE_ENDS = (b"\r", b"\n")


def size() -> dict[str, int]:
    for fd in (sys.stdout.fileno(), sys.stdin.fileno()):
        with contextlib.suppress(OSError):
            cols, rows = os.get_terminal_size(fd)
            return {"cols": max(cols, 1), "rows": max(rows, 1)}
    return {"cols": 80, "rows": 24}


def require_terminal() -> None:
    if not os.isatty(sys.stdin.fileno()):
        raise CliError("-t needs a terminal on stdin")


def write_output(event: str, data: dict[str, Any]) -> None:
    """A terminal run's bytes as it wrote them (a non-terminal line as `rdev run` does)."""
    if event == "output":
        end = "" if data.get("partial") else "\n"
        sys.stdout.buffer.write((data["line"] + end).encode())
        sys.stdout.buffer.flush()
    elif event == "error":
        sys.stderr.write(f"\r\nrdev: the run failed: {data.get('message')}\r\n")


class Session:
    """Keystrokes and window changes of this terminal, to one run."""

    def __init__(self, command_id: str, restore: Any) -> None:
        self.command_id = command_id
        self.restore = restore  # puts the terminal back before a detach exits

    def start(self) -> None:
        signal.signal(signal.SIGWINCH, lambda *_: self._later(self._resize))
        threading.Thread(target=self._keys, daemon=True).start()

    def _later(self, target: Any) -> None:
        threading.Thread(target=target, daemon=True).start()

    def _resize(self) -> None:
        with contextlib.suppress(CliError), RdevClient() as client:
            client.request("POST", f"/commands/{self.command_id}/resize", json_body=size())

    def _reads(self) -> Iterator[bytes]:
        at_line_start, escaped = True, False
        while data := os.read(sys.stdin.fileno(), 1024):
            out = bytearray()
            for byte in (data[i : i + 1] for i in range(len(data))):
                if escaped:
                    escaped = False
                    if byte == b".":
                        self._detach()
                    if byte != ESCAPE:
                        out += ESCAPE
                elif at_line_start and byte == ESCAPE:
                    escaped = True
                    continue
                out += byte
                at_line_start = byte in LINE_ENDS
            if out:
                yield bytes(out)

    def _detach(self) -> None:
        self.restore()
        sys.stderr.write(
            f"\r\nrdev: detached from {self.command_id}; it goes on "
            f"(`rdev attach {self.command_id}` re-enters)\r\n"
        )
        sys.stderr.flush()
        os._exit(0)

    def _keys(self) -> None:
        try:
            with RdevClient() as client:
                client.http.put(
                    f"/commands/{self.command_id}/stdin",
                    params={"close": "false"},
                    content=self._reads(),
                    timeout=httpx.Timeout(30.0, read=None, write=None),
                )
        except (CliError, httpx.HTTPError) as error:
            report(CliError(f"keystrokes not sent: {error}"))


def session(
    client: RdevClient,
    project: str,
    body: dict[str, Any] | None = None,
    command_id: str | None = None,
) -> dict[str, Any]:
    """Submit `body` (or join the run `command_id`) with this terminal raw; the run's
    `complete` data once it ends."""
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)

    def restore() -> None:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)

    tty.setraw(fd, termios.TCSADRAIN)  # what was typed ahead is kept, as ssh does
    try:
        if body is not None:
            return client.submit_and_follow(
                project, body, lambda cid: Session(cid, restore).start(), write_output
            )
        assert command_id is not None
        Session(command_id, restore).start()
        return client.follow(project, command_id, write_output)
    finally:
        restore()
