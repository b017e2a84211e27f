"""The outbox relay: publishes committed events, then marks them sent.

A service writes an event into its outbox table in the transaction of the change it
records (the api: admin events for RDEV_ADMIN; webhooks: attempts and endpoint
state for RDEV_WEBHOOKS), so no crash can keep one change without its event. Every replica
runs a relay. Rows are claimed inside a transaction that stays open while
they are published: `FOR UPDATE SKIP LOCKED` on PostgreSQL lets replicas share the work,
and on SQLite a first UPDATE takes the database's single write lock, so one relay works
at a time. Each message carries `Nats-Msg-Id` = event id: if a relay dies after
publishing but before its commit, the rows are published again by the next relay and
JetStream drops the duplicates (within the stream's de-duplication window).

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
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from nats.js import JetStreamContext
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

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

    def wake(self) -> None:
        """Called after a commit that wrote outbox rows."""
        self._wake.set()

    async def relay_once(self) -> int:
        """Publish one batch of unsent events; returns how many were sent."""
        async with self.writes, self.sessions() as session, session.begin():
            rows = await self._claim(session)
            for row in rows:  # one at a time: a failed publish stops the batch, in order
                await self.publish(row.subject, row.payload.encode(), row.id)
            if rows:
                sent = [row.id for row in rows]
                await session.execute(
                    update(self.table)
                    .where(self.table.id.in_(sent))
                    .values(sent_at=datetime.now(UTC))
                    .execution_options(synchronize_session=False)
                )
        if rows:
            log.info("outbox events published", table=self._name, count=len(rows))
        return len(rows)

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

    async def _claim(self, session: AsyncSession) -> list[OutboxColumns]:
        row = self.table
        unsent = row.sent_at.is_(None)
        query = select(row).where(unsent).order_by(row.created_at, row.id)
        if session.get_bind().dialect.name == "sqlite":
            if await session.scalar(select(row.id).where(unsent).limit(1)) is None:
                return []
            # The UPDATE takes the write lock; only the batch's rows are touched, so a
            # backlog does not make every pass cost more.
            oldest = select(row.id).where(unsent).order_by(row.created_at, row.id)
            await session.execute(
                update(row)
                .where(row.id.in_(oldest.limit(self.batch).scalar_subquery()))
                .values(attempts=row.attempts + 1)
                .execution_options(synchronize_session=False)
            )
            return list(await session.scalars(query.limit(self.batch)))
        query = query.limit(self.batch).with_for_update(skip_locked=True)
        return list(await session.scalars(query))

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
                log.warning("outbox relay failed, will retry", error=type(exc).__name__)
            if failures:
                # The broker away: back off, deaf to wake-ups (a commit a second would
                # otherwise retry at once), since a pass that fails holds the service's
                # write turn until its publish times out.
                await asyncio.sleep(min(self.poll_s * 2**failures, MAX_BACKOFF_S))
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_s)
            if self.linger_s:  # let a burst of commits gather into one batch
                await asyncio.sleep(self.linger_s)
            self._wake.clear()
