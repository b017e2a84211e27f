"""The store's hot statements on SQLite, off the event loop: two reads through the
standard `sqlite3` module, and each delivery's claim and record.

The lifecycle consumer reads the enabled endpoints of a batch's projects once per
batch, and the dispatcher polls for due deliveries four times a second. Through
SQLAlchemy and aiosqlite each read hands work to aiosqlite's thread about six
times (cursor, execute, fetch, close, rollback), and after an idle moment each
hand-off wakes a sleeping thread: about 1.7 ms of CPU per read, most of what a
batch of events or an idle second cost. The same SELECT through `sqlite3` takes
~10 µs; it runs on a thread of its own, one hand-off per read, so the event loop
never waits on a lock or a disk read. Each SELECT is its own read transaction, so
in WAL mode it sees everything committed before it began: nothing is cached.

Rows are decoded as SQLAlchemy stores them on SQLite (JSON as text, datetimes as
naive UTC `YYYY-MM-DD HH:MM:SS.ffffff`); tests hold both paths to the same answers.

A delivery's claim and record run on a second thread, each as one hand-off: the
store's Core statements on a synchronous engine of the same file. Through aiosqlite
their six statements took about 23 hand-offs, most of the CPU the event loop spent
per delivery. They still take turns with the store's other writes (its lock); a
write waiting out another process's lock (busy timeout) holds up no read.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine

from rdev_webhooks.adapters.sqlalchemy_attempts import endpoint_of
from rdev_webhooks.domain.model import Endpoint

BUSY_TIMEOUT_MS = 10_000  # as the services' own connections: wait out a checkpoint
T = TypeVar("T")

_ENABLED_ENDPOINTS = (
    "SELECT id, project, url, events, secret, previous_secret, previous_secret_expires_at,"
    " enabled FROM webhooks WHERE enabled AND project IN ({})"
)
_DUE_ENDPOINTS = (
    "SELECT webhook_id FROM webhook_deliveries"
    " WHERE status = 'pending' AND next_attempt_at <= ? GROUP BY webhook_id"
)


@dataclass(frozen=True)
class _Row:
    """A row as SQLAlchemy stores it on SQLite: JSON as text, datetimes as ISO text."""

    id: str
    project: str
    url: str
    events: Any
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None
    enabled: bool

    @classmethod
    def of(cls, raw: tuple[Any, ...]) -> _Row:
        id_, project, url, events, secret, previous, expires, enabled = raw
        when = datetime.fromisoformat(expires).replace(tzinfo=UTC) if expires else None
        return cls(id_, project, url, json.loads(events), secret, previous, when, bool(enabled))


def stored_time(value: datetime) -> str:
    """A datetime as SQLAlchemy stores it on SQLite, so the two compare as text."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


class SqliteThreads:
    def __init__(self, path: str) -> None:
        self.path = path
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="webhooks-sqlite-reads")
        self._db: sqlite3.Connection | None = None  # opened and used on that thread only
        self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="webhooks-sqlite-writes")
        self._writes: Engine | None = None  # used on that thread only

    async def enabled_endpoints(self, projects: Collection[str]) -> list[Endpoint]:
        if not projects:
            return []
        names = sorted(projects)
        sql = _ENABLED_ENDPOINTS.format(",".join("?" * len(names)))
        raw = await self._read(sql, names)
        now = datetime.now(UTC)
        return [endpoint_of(_Row.of(r), now) for r in raw]

    async def due_endpoints(self, now: datetime) -> list[str]:
        return [
            webhook_id for (webhook_id,) in await self._read(_DUE_ENDPOINTS, [stored_time(now)])
        ]

    async def transact(self, work: Callable[[Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._write_thread, self._transact, work)

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._close)
        await loop.run_in_executor(self._write_thread, self._close_writes)
        self._thread.shutdown(wait=False)
        self._write_thread.shutdown(wait=False)

    async def _read(self, sql: str, params: list[str]) -> list[tuple[Any, ...]]:
        return await asyncio.get_running_loop().run_in_executor(
            self._thread, self._fetch, sql, params
        )

    def _fetch(self, sql: str, params: list[str]) -> list[tuple[Any, ...]]:
        if self._db is None:
            self._db = sqlite3.connect(self.path)
            self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._db.execute("PRAGMA query_only = 1")
        return self._db.execute(sql, params).fetchall()

    def _transact(self, work: Callable[[Connection], T]) -> T:
        if self._writes is None:
            self._writes = create_engine(URL.create("sqlite", database=self.path))
            event.listen(self._writes, "connect", _write_pragmas)
        with self._writes.connect() as conn:
            return work(conn)

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _close_writes(self) -> None:
        if self._writes is not None:
            self._writes.dispose()
            self._writes = None


def _write_pragmas(db: sqlite3.Connection, _record: Any) -> None:
    """As the services' own connections."""
    db.execute("PRAGMA journal_mode = WAL")
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    db.execute("PRAGMA synchronous = NORMAL")
