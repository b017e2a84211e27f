"""Whether `rdev run` was given input it would drop.

Commands do not get a standard input until interactive runs exist, so input waiting
on ours must not vanish silently. Nothing to drop: a terminal (a person typing is not
input the command expects), /dev/null and other devices, an empty or fully read
file, a closed pipe, and a pipe nobody writes to (CI runners leave stdin open and
silent: that must work, and not hang).
"""

from __future__ import annotations

import os
import select
import stat
import sys

# How long a pipe may stay silent before it counts as one nobody writes to: the
# writer of `echo x | rdev run` has long written by the time Python has started.
PIPE_WAIT_S = 0.2


def stdin_has_input(fd: int | None = None, wait_s: float = PIPE_WAIT_S) -> bool:
    if fd is None:
        if sys.stdin is None:
            return False
        try:
            fd = sys.stdin.fileno()
        except (OSError, ValueError):
            return False
    try:
        if os.isatty(fd):
            return False
        info = os.fstat(fd)
    except OSError:
        return False  # closed
    if stat.S_ISREG(info.st_mode):
        try:
            return info.st_size > os.lseek(fd, 0, os.SEEK_CUR)
        except OSError:
            return info.st_size > 0
    if stat.S_ISFIFO(info.st_mode) or stat.S_ISSOCK(info.st_mode):
        readable, _, _ = select.select([fd], [], [], wait_s)
        if not readable:
            return False
        # Readable: data, or the end (a closed, empty pipe). Only data counts.
        try:
            return os.read(fd, 1) != b""
        except OSError:
            return False
    return False  # /dev/null and other character devices
