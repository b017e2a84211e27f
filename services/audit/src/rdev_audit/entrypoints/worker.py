"""One projection loop per source stream: position, fetch, project, ack; re-position on doubt."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog

from rdev_audit.adapters.nats_feed import NatsPositionedFeed, OutOfOrder
from rdev_audit.entrypoints.observed import projection_span
from rdev_audit.service_layer.ports import Position, ProjectionUnitOfWork
from rdev_audit.service_layer.projector import Resync, Source, current_position, project
from rdev_common.db import outage

log = structlog.get_logger()

RETRY_DELAY_S = 1.0


@dataclass
class ProjectionLoop:
    source: Source
    feed: NatsPositionedFeed
    uow: Callable[[], ProjectionUnitOfWork]
    clock: Callable[[], datetime]
    position: Position | None = None
    projected: int = 0

    async def reposition(self) -> None:
        self.position = await current_position(self.uow(), self.source.stream)
        await self.feed.position_at(self.position.last_seq + 1)

    async def step(self) -> None:
        """One batch, or on an idle broker a check that no rebuild moved the position."""
        assert self.position is not None
        batch = await self.feed.next_batch()
        if not batch:
            latest = await current_position(self.uow(), self.source.stream)
            if latest.generation != self.position.generation:
                raise Resync(f"{self.source.stream} is at generation {latest.generation}")
            return
        with projection_span(self.source, batch):
            self.position = await project(self.uow(), self.source, self.position, batch, self.clock)
        self.projected += len(batch)
        await self.feed.ack()

    async def run(self) -> None:
        stream = self.source.stream
        while True:
            try:
                if self.position is None:
                    await self.reposition()
                await self.step()
            except asyncio.CancelledError:
                raise
            except (Resync, OutOfOrder) as exc:
                log.info("projection re-positioning", stream=stream, why=str(exc))
                self.position = None
            except Exception as exc:  # database or broker away: retry from the recorded position
                if not outage.said(exc):
                    log.warning("projection step failed", stream=stream, error=repr(exc))
                self.position = None
                await asyncio.sleep(RETRY_DELAY_S)
