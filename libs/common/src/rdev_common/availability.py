"""A database outage, said once: one log line when the database goes away, one when it
is back, whatever the number of requests and retries in between.

Free of any database library, so service layers may use it; `rdev_common.db.outage`
teaches it which errors mean "unreachable" and reports an engine's connections here.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

log = structlog.get_logger()

# Tell whether an error means the database cannot be reached (registered by
# rdev_common.db.outage when it is imported, which creating an engine does).
CLASSIFIERS: list[Callable[[BaseException], bool]] = []


class Availability:
    """Whether this process's database answered last time, logged on each change only."""

    def __init__(self) -> None:
        self.down_since: float | None = None

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def failed(self, error: BaseException) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()
            reason = getattr(error, "orig", None) or error
            log.warning(
                "database unavailable", error=type(reason).__name__, detail=str(reason)[:200]
            )

    def answered(self) -> None:
        if self.down_since is not None:
            outage_s = round(time.monotonic() - self.down_since, 1)
            self.down_since = None
            log.info("database available again", outage_s=outage_s)


# One database per service process.
DATABASE = Availability()


def said(error: BaseException) -> bool:
    """True when `error` is the database being away: it is reported (once, for the whole
    outage) and the caller, about to retry, need not log it again."""
    if any(unreachable(error) for unreachable in CLASSIFIERS):
        DATABASE.failed(error)
        return True
    return False
