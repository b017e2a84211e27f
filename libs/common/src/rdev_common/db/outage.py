"""Which database errors mean "unreachable", and an engine that reports its lost and new
connections to `rdev_common.availability` (one log line per outage, each way)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import AsyncEngine

from rdev_common.availability import CLASSIFIERS, DATABASE, Availability, said

__all__ = ["DATABASE", "RETRY_AFTER_S", "is_unavailable", "said", "watch"]

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


if is_unavailable not in CLASSIFIERS:
    CLASSIFIERS.append(is_unavailable)


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
