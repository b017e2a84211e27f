"""One audit writer at a time: a second replica waits as a standby.

The audit log is a hash chain with a single writer. The tracking row's
compare-and-set already keeps two writers from forking the chain, but two
instances would reset each other's consumers and re-position without end. So the
instance that projects holds a lock for as long as it lives:

- PostgreSQL: a session-level advisory lock on a connection of its own. The
  server releases it when that session ends (the process died, the connection
  broke); the holder checks its session every few seconds and stops projecting
  when it is gone.
- SQLite: an exclusive `flock` on a file beside the database, released by the
  kernel when the process ends.

Another instance polls for the lock and logs once that it is a standby.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from typing import Protocol

import structlog
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from rdev_common.db import outage
from rdev_common.db.engine import sqlite_file

log = structlog.get_logger()

# pg_advisory_lock's bigint key: "rdevaudi" in ASCII.
ADVISORY_KEY = 0x7264657661756469


class WriterLock(Protocol):
    async def try_acquire(self) -> bool: ...

    async def still_held(self) -> bool: ...

    async def release(self) -> None: ...


class PostgresWriterLock:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._conn: AsyncConnection | None = None

    async def try_acquire(self) -> bool:
        conn = await self._engine.connect()
        try:
            got = await conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_KEY})
            await conn.commit()  # the lock is the session's: no transaction stays open
        except BaseException:
            await conn.close()
            raise
        if not got:
            await conn.close()
            return False
        self._conn = conn
        return True

    async def still_held(self) -> bool:
        if self._conn is None:
            return False
        try:
            await self._conn.execute(text("SELECT 1"))
            await self._conn.commit()
        except Exception as exc:
            log.warning("audit writer lock lost with its session", error=repr(exc))
            await self._drop()
            return False
        return True

    async def release(self) -> None:
        if self._conn is None:
            return
        with contextlib.suppress(Exception):
            await self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_KEY})
            await self._conn.commit()
        await self._drop()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.invalidate()  # never back into the pool: its session is suspect
            with contextlib.suppress(Exception):
                await conn.close()


class FileWriterLock:
    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    async def try_acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    async def still_held(self) -> bool:
        return self._fd is not None

    async def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # releases the lock


class NoLock:
    """An in-memory SQLite database: no other process can share it."""

    async def try_acquire(self) -> bool:
        return True

    async def still_held(self) -> bool:
        return True

    async def release(self) -> None:
        return None


def writer_lock(database_url: str, engine: AsyncEngine) -> WriterLock:
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        return PostgresWriterLock(engine)
    path = sqlite_file(url)
    if path is None:
        return NoLock()
    return FileWriterLock(os.path.realpath(path) + ".audit-writer.lock")


async def acquire(lock: WriterLock, stop: asyncio.Event, poll_s: float) -> bool:
    """Wait for the lock until `stop` is set; True once held."""
    waiting = False
    while not stop.is_set():
        try:
            if await lock.try_acquire():
                if waiting:
                    log.info("audit standby taking over: the writer lock is free")
                return True
        except Exception as exc:  # the database is away: keep waiting
            if not outage.said(exc):
                log.warning("audit writer lock not available", error=repr(exc))
        if not waiting:
            log.info("audit standby: another audit instance holds the writer lock; waiting for it")
            waiting = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), poll_s)
    return False
