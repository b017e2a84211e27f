"""A database outage, said once: one log line when the database goes away, one when it
is back, whatever the number of requests and retries in between."""

from __future__ import annotations

import time
from typing import Any

import structlog
from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import AsyncEngine

log = structlog.get_logger()

# What a client is told to wait before trying again while the database is away.
RETRY_AFTER_S = 5


def is_unavailable(error: BaseException) -> bool:
    """Whether `error` means the database cannot be reached right now (stopped, restarting,
    unreachable, its pool exhausted), not that a statement was wrong."""
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, exc.OperationalError | exc.InterfaceError | exc.TimeoutError) or (
        isinstance(error, exc.DBAPIError) and isinstance(error.orig, OSError)
    )


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


# One database per service process: its engine reports here (see `watch`).
DATABASE = Availability()


def watch(engine: AsyncEngine, availability: Availability = DATABASE) -> None:
    """Report `engine`'s lost and new connections to `availability`."""

    def on_error(context: Any) -> None:
        error = context.sqlalchemy_exception or context.original_exception
        if context.is_disconnect or is_unavailable(error):
            availability.failed(error)

    def on_connect(*_: Any) -> None:
        availability.answered()

    event.listen(engine.sync_engine, "handle_error", on_error)
    event.listen(engine.sync_engine, "connect", on_connect)


def said(error: BaseException) -> bool:
    """True when `error` is the database being away: it is reported (once, for the whole
    outage) and the caller, about to retry, need not log it again."""
    if is_unavailable(error):
        DATABASE.failed(error)
        return True
    return False
