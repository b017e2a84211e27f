"""The outbox relay: publishes committed events, then marks them sent.

A service writes an event into its outbox table in the transaction of the change it
records (the api: admin events for RDEV_ADMIN; webhooks: attempts and endpoint
state for RDEV_WEBHOOKS), so no crash can keep one change without its event. Every replica
runs a relay, and no row is published by two at once:

- PostgreSQL: rows are claimed with `FOR UPDATE SKIP LOCKED` in a transaction that stays
  open while they are published, so replicas share the work (row locks hold up no
  writer);
- SQLite: one relay at a time. It takes a file lock beside the database (every process
  on that file sees it; a relay that finds it taken skips its pass), reads its batch,
  publishes it outside any transaction, and then marks it in one short write: SQLite
  has a single write lock, and a relay must not hold it while the broker is slow or
  away.

Each message carries `Nats-Msg-Id` = event id: if a relay dies after publishing but
before marking, the rows are published again by the next relay and JetStream drops the
duplicates (within the stream's de-duplication window).

Sent rows are kept `keep_s` (a day by default) for inspection, then deleted: the
events themselves live on in their stream and the audit log.

Where a service takes turns for its writes (one SQLite writer), the relay takes the
same turn (`writes`) instead of meeting the service's writers in SQLite's busy
handler, which sleeps; `linger_s` gathers a burst of commits (a webhook attempt
each) into one batch, so the relay takes that turn a few times a second, not once
per commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from nats.js import JetStreamContext
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rdev_common.db import outage
from rdev_common.db.engine import sqlite_file
from rdev_common.db.tables import OutboxColumns, OutboxRow

log = structlog.get_logger()

Publish = Callable[[str, bytes, str], Awaitable[None]]
PRUNE_EVERY_S = 600.0
MAX_BACKOFF_S = 8.0


def nats_publisher(js: JetStreamContext, stream: str, timeout_s: float = 5.0) -> Publish:
    async def publish(subject: str, payload: bytes, event_id: str) -> None:
        await js.publish(
            subject, payload, timeout=timeout_s, stream=stream, headers={"Nats-Msg-Id": event_id}
        )

    return publish


class OutboxRelay:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        publish: Publish,
        *,
        poll_s: float = 0.5,
        batch: int = 100,
        keep_s: float = 86400.0,
        table: type[OutboxColumns] = OutboxRow,
        writes: contextlib.AbstractAsyncContextManager[Any] | None = None,
        linger_s: float = 0.0,
    ) -> None:
        self.sessions = sessions
        # The service's own turn-taking for writes, where it has one (SQLite): a relay
        # that met the service's writers in SQLite's busy handler would sleep there.
        self.writes = writes or contextlib.nullcontext()
        self.linger_s = linger_s
        self.table = table
        self.publish = publish
        self.poll_s = poll_s
        self.batch = batch
        self.keep_s = keep_s
        self._wake = asyncio.Event()
        self._prune_at = 0.0
        self._looked_up = False
        self._sqlite_file: str | None = None  # the database file, if SQLite

    def wake(self) -> None:
        """Called after a commit that wrote outbox rows."""
        self._wake.set()

    async def relay_once(self) -> int:
        """Publish one batch of unsent events; returns how many were sent."""
        if not self._looked_up:
            async with self.sessions() as session:  # no connection: the engine's URL only
                self._sqlite_file = _sqlite_file(session)
            self._looked_up = True
        if self._sqlite_file is not None:
            sent = await self._relay_sqlite(self._sqlite_file)
        else:
            sent = await self._relay_claimed()
        if sent:
            log.info("outbox events published", table=self._name, count=sent)
        return sent

    async def _relay_claimed(self) -> int:
        """PostgreSQL: the batch's rows stay locked (SKIP LOCKED for other replicas)
        while they are published, in the transaction that marks them."""
        ids: list[str] = []
        try:
            async with self.sessions() as session, session.begin():
                query = self._unsent().limit(self.batch).with_for_update(skip_locked=True)
                rows = list(await session.scalars(query))
                ids = [row.id for row in rows]
                await self._publish_all(rows)
                await self._mark(session, ids, sent=True)
        except Exception:
            await self._count_failed(ids)  # the claim rolled back with the publish
            raise
        return len(ids)

    async def _relay_sqlite(self, database: str) -> int:
        with _file_lock(f"{database}.{self._name}-relay.lock") as ours:
            if not ours:
                return 0  # another relay on this database is at work
            async with self.sessions() as session:  # a read: no write lock
                rows = list(await session.scalars(self._unsent().limit(self.batch)))
            ids = [row.id for row in rows]
            try:
                await self._publish_all(rows)
            except Exception:
                await self._count_failed(ids)
                raise
            async with self.writes, self.sessions() as session, session.begin():
                await self._mark(session, ids, sent=True)
            return len(ids)

    async def _count_failed(self, ids: list[str]) -> None:
        """One more attempt for rows a failed pass tried; the publish's error is the one
        that matters, so a failure here is only logged."""
        if not ids:
            return
        try:
            async with self.writes, self.sessions() as session, session.begin():
                await self._mark(session, ids, sent=False)
        except Exception as exc:
            log.warning("outbox attempt not counted", table=self._name, error=type(exc).__name__)

    def _unsent(self) -> Any:
        row = self.table
        return select(row).where(row.sent_at.is_(None)).order_by(row.created_at, row.id)

    async def _publish_all(self, rows: list[OutboxColumns]) -> None:
        for row in rows:  # one at a time: a failed publish stops the batch, in order
            await self.publish(row.subject, row.payload.encode(), row.id)

    async def _mark(self, session: AsyncSession, ids: list[str], sent: bool) -> None:
        """Count a pass over the rows `ids`; with `sent`, mark them sent (one statement)."""
        if not ids:
            return
        values: dict[str, Any] = {"attempts": self.table.attempts + 1}
        if sent:
            values["sent_at"] = datetime.now(UTC)
        await session.execute(
            update(self.table)
            .where(self.table.id.in_(ids))
            .values(**values)
            .execution_options(synchronize_session=False)
        )

    async def prune(self, now: datetime | None = None) -> int:
        """Delete the rows sent more than `keep_s` before `now`; returns how many."""
        cutoff = (now or datetime.now(UTC)) - timedelta(seconds=self.keep_s)
        async with self.writes, self.sessions() as session, session.begin():
            result = await session.execute(delete(self.table).where(self.table.sent_at < cutoff))
        pruned = int(getattr(result, "rowcount", 0) or 0)
        if pruned:
            log.info("sent events pruned from the outbox", table=self._name, count=pruned)
        return pruned

    @property
    def _name(self) -> str:
        return str(getattr(self.table, "__tablename__", self.table.__name__))

    async def run(self) -> None:
        """Relay until cancelled: at once when woken, otherwise every `poll_s`; prune
        sent rows every few minutes."""
        loop = asyncio.get_running_loop()
        failures = 0
        while True:
            try:
                while await self.relay_once() == self.batch:
                    pass
                if loop.time() >= self._prune_at:
                    self._prune_at = loop.time() + PRUNE_EVERY_S
                    await self.prune()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                if not outage.said(exc):
                    log.warning("outbox relay failed, will retry", error=type(exc).__name__)
            if failures:
                # The broker away: back off, deaf to wake-ups (a commit a second would
                # otherwise retry at once, each pass waiting out its publish timeout).
                await asyncio.sleep(min(self.poll_s * 2**failures, MAX_BACKOFF_S))
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_s)
            if self.linger_s:  # let a burst of commits gather into one batch
                await asyncio.sleep(self.linger_s)
            self._wake.clear()


def _sqlite_file(session: AsyncSession) -> str | None:
    """The database file of a plain SQLite session (symbolic links resolved, so every
    path to it finds the same lock); None for any other, which takes the transactional
    path."""
    path = sqlite_file(session.get_bind().engine.url)
    return os.path.realpath(path) if path else None


@contextlib.contextmanager
def _file_lock(path: str) -> Iterator[bool]:
    """Whether this process got the exclusive lock of `path`, held until the block ends."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the lock
