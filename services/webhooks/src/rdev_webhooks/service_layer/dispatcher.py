"""Finds due deliveries and hands each to its endpoint's own lane.

Every endpoint has a lane: a queue and a few workers, plus a circuit breaker.
A dead or hanging endpoint ties up only its own workers, so deliveries to
healthy endpoints never wait behind it. The due time lives in SQL, so the
schedule survives a restart; in memory there is only what is in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from rdev_common import availability
from rdev_common.circuit_breaker import BreakerPolicy, CircuitBreaker, State, StateChange
from rdev_webhooks.service_layer.attempt import AttemptContext, run_attempt

log = structlog.get_logger()

LANE_BUFFER = 4  # deliveries queued per worker of a lane between two scheduling rounds


@dataclass
class Lane:
    breaker: CircuitBreaker
    queue: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    in_flight: set[str] = field(default_factory=set)
    workers: list[asyncio.Task[None]] = field(default_factory=list)


class Dispatcher:
    def __init__(
        self,
        ctx: AttemptContext,
        breaker_policy: BreakerPolicy,
        concurrency: int = 4,
        poll_interval_s: float = 0.25,
        breaker_observer: Callable[[str], Callable[[StateChange], None]] | None = None,
    ) -> None:
        self.ctx = ctx
        self.breaker_policy = breaker_policy
        self.concurrency = concurrency
        self.poll_interval_s = poll_interval_s
        self.breaker_observer = breaker_observer
        self.lanes: dict[str, Lane] = {}
        self.wake = asyncio.Event()

    async def run(self) -> None:
        """Schedule until cancelled; wakes early when new deliveries are recorded."""
        try:
            while True:
                try:
                    await self.schedule_due()
                except Exception as exc:  # database away: keep trying
                    if not availability.said(exc):
                        log.warning("scheduling failed", error=repr(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self.poll_interval_s)
                self.wake.clear()
        finally:
            await self.stop()

    async def schedule_due(self) -> None:
        now = self.ctx.clock()
        for webhook_id in await self.ctx.store.due_endpoints(now):
            lane = self._lane(webhook_id)
            room = self._room(lane)
            if room <= 0:
                continue
            due = await self.ctx.store.due_deliveries(webhook_id, now, lane.in_flight, room)
            for delivery_id in due:
                lane.in_flight.add(delivery_id)
                lane.queue.put_nowait(delivery_id)

    def _room(self, lane: Lane) -> int:
        """How many more deliveries the lane may queue now. Open: none, they stay due in
        SQL until the cool-down is over. Half-open: one, the probe, once the lane is
        idle; nothing else is sent or pushed back while it is in flight, and its
        success closes the circuit and wakes the scheduler for the backlog."""
        state = lane.breaker.state
        if state is State.OPEN:
            return 0
        if state is State.HALF_OPEN:
            return 0 if lane.in_flight else 1
        return LANE_BUFFER * self.concurrency - len(lane.in_flight)

    def _lane(self, webhook_id: str) -> Lane:
        lane = self.lanes.get(webhook_id)
        if lane is None:
            breaker = CircuitBreaker(
                f"webhook {webhook_id}",
                self.breaker_policy,
                on_state_change=self.breaker_observer(webhook_id)
                if self.breaker_observer
                else None,
            )
            lane = Lane(breaker)
            lane.workers = [asyncio.create_task(self._work(lane)) for _ in range(self.concurrency)]
            self.lanes[webhook_id] = lane
        return lane

    async def _work(self, lane: Lane) -> None:
        while True:
            delivery_id = await lane.queue.get()
            try:
                await run_attempt(self.ctx, lane.breaker, delivery_id)
            except Exception as exc:
                # The lease makes the delivery due again; nothing is lost.
                lane.breaker.record_cancelled()
                log.warning("attempt failed", delivery_id=delivery_id, error=repr(exc))
            finally:
                lane.in_flight.discard(delivery_id)
                if lane.queue.empty():  # refill a drained lane now, not at the next poll
                    self.wake.set()

    async def stop(self) -> None:
        tasks = [t for lane in self.lanes.values() for t in lane.workers]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
