"""`rdev run`'s standard input, sent on to the run as ssh does: a pipe or a file is
forwarded (its end closes the run's stdin); a terminal or nothing is not."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator

import httpx

from rdev_cli.client import RdevClient, raise_for
from rdev_cli.errors import CliError, report

READ_SIZE = 64 * 1024


def carries_data(fd: int = 0) -> bool:
    """Whether `fd` is a pipe, a socket or a regular file (not a terminal, not /dev/null)."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISREG(mode) or stat.S_ISSOCK(mode)


def _chunks(fd: int) -> Iterator[bytes]:
    while data := os.read(fd, READ_SIZE):
        yield data


def forward(command_id: str, fd: int = 0) -> None:
    """Stream `fd` into the run's stdin until its end; runs on its own thread."""
    try:
        with RdevClient() as client:
            client.require_key()
            try:
                response = client.http.put(
                    f"/commands/{command_id}/stdin",
                    content=_chunks(fd),
                    timeout=httpx.Timeout(30.0, read=None, write=None),
                )
            except httpx.TransportError as exc:
                raise client.unreachable(exc) from exc
            if response.status_code == 409:
                return  # the run ended before reading all of it, as `ssh host true < file`
            raise_for(response, f"command {command_id!r}")
    except CliError as error:
        report(CliError(f"stdin not sent: {error}"))


def start(command_id: str, fd: int = 0) -> threading.Thread:
    thread = threading.Thread(target=forward, args=(command_id, fd), daemon=True)
    thread.start()
    return thread
