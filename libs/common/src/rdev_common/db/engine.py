"""Async engine factory for SQLite (aiosqlite) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import URL, event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from rdev_common.db import outage
from rdev_common.telemetry import instrument_engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def sqlite_file(url: URL) -> str | None:
    """The database file of a plain SQLite URL; None for anything else (another
    database, in memory, URI options)."""
    path = url.database
    if url.get_backend_name() != "sqlite" or url.query or not path or path == ":memory:":
        return None
    return path


def create_engine(url: str) -> AsyncEngine:
    """An engine with WAL and a busy timeout on SQLite, so several processes can share it.

    Its statements are traced as children of the current span.
    """
    if url.startswith("sqlite"):
        engine = create_async_engine(url)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    else:
        # A database that does not answer fails a connection attempt in 5 s, not the
        # operating system's minutes: requests get their 503 while it is away.
        engine = create_async_engine(
            url,
            pool_pre_ping=True,
            pool_size=10,
            max_overflow=10,
            pool_timeout=10,
            connect_args={"connect_timeout": 5},
        )
    instrument_engine(engine)
    outage.watch(engine)
    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(engine, expire_on_commit=False)


def sync_url(url: str) -> str:
    """The same database for synchronous tools (Alembic)."""
    return url.replace("sqlite+aiosqlite", "sqlite", 1)
