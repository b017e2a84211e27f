"""The process guard: ends the runs' process groups when its executor dies.

Started by the executor (`process_guard.py`) as `python -I -S guard_main.py GRACE`
in a session of its own, it reads "+PGID" and "-PGID" lines on stdin, the process
groups of the runs in progress. End of stdin means the executor is gone, however it
went (a SIGKILL included: the kernel closes its end of the pipe): the guard sends
SIGTERM to every group still listed, SIGKILL after GRACE seconds to those still
there, and exits. Standard library only: it starts in a few milliseconds.
"""

from __future__ import annotations

import os
import signal
import sys
import time


def _signal(groups: set[int], signum: int) -> set[int]:
    """Send `signum` to each group; the groups that still exist."""
    alive = set()
    for pgid in groups:
        try:
            os.killpg(pgid, signum)
            alive.add(pgid)
        except (ProcessLookupError, PermissionError):
            pass
    return alive


def main() -> None:
    grace_s = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    # A terminal's Ctrl-C or the executor's own stop are not for the guard: only the
    # end of its input is.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    groups: set[int] = set()
    for line in sys.stdin:
        sign, number = line[:1], line[1:].strip()
        if number.isdigit() and int(number) > 1:
            (groups.add if sign == "+" else groups.discard)(int(number))
    groups = _signal(groups, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while groups and time.monotonic() < deadline:
        time.sleep(0.05)
        groups = _signal(groups, 0)
    _signal(groups, signal.SIGKILL)


if __name__ == "__main__":
    main()
