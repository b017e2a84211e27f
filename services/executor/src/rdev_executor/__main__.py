"""`python -m rdev_executor`"""

from __future__ import annotations

import asyncio
import os
import sys

from rdev_common.logging import configure_logging
from rdev_common.service import run_async
from rdev_executor.bootstrap import serve
from rdev_executor.settings import ExecutorSettings


def watch_children_with_pidfd() -> None:
    """Wait for commands through a pidfd on the event loop instead of a thread each.

    Python 3.11 starts a thread per child process to wait for it; 3.12 and later
    use pidfds by default. Kernels before 5.3 have no pidfd: the default stays.
    """
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return
    asyncio.set_child_watcher(asyncio.PidfdChildWatcher())


def main() -> None:
    settings = ExecutorSettings()
    configure_logging(settings.log_format, settings.log_level, service="executor")
    watch_children_with_pidfd()
    # The standard loop: uvloop's fork() costs ~10 ms per command in a process this size.
    run_async(serve(settings), fast_loop=False)


if __name__ == "__main__":
    main()
