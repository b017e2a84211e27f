"""`python -m rdev_executor`"""

from __future__ import annotations

from rdev_common.logging import configure_logging
from rdev_common.service import run_async
from rdev_executor.bootstrap import serve
from rdev_executor.settings import ExecutorSettings


def main() -> None:
    settings = ExecutorSettings()
    configure_logging(settings.log_format, settings.log_level, service="executor")
    # The standard loop: uvloop's fork() costs ~10 ms per command in a process this size.
    run_async(serve(settings), fast_loop=False)


if __name__ == "__main__":
    main()
