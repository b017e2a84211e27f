"""Where a queued run stands, read from the executors' consumers, told as an event.

The executors take commands from one durable consumer per priority, high first, and
only as many as they have free slots: a command the consumer has not delivered yet
waits for an executor. Ahead of it: every undelivered command of a higher priority,
and the undelivered ones of its own priority stored before it (counted as the fewer
of two upper bounds: that queue's pending count, and the stream sequences between
the consumer's last delivery and it, which also span other priorities' commands).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from collections import deque
from datetime import UTC, datetime, timedelta

import orjson
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from rdev_common import streams, subjects
from rdev_common.events import CloudEvent, CommandQueued, Priority

SOURCE = "rdev/api"
ORDER = (Priority.HIGH, Priority.NORMAL, Priority.LOW)
STARTED_KINDS = frozenset({"started", "output", "completed"})
# Recent run times: the runs that ended in this window, at most this many.
RECENT_WINDOW = timedelta(minutes=30)
RECENT_RUNS = 100
MAX_FETCHES = 20
ESTIMATE_TTL_S = 15.0


class NatsQueue:
    def __init__(self, js: JetStreamContext) -> None:
        self.js = js
        self._mean: tuple[float, float | None] = (0.0, None)  # (read at, mean seconds)

    async def announce(self, project: str, command_id: str) -> bool:
        """Publish the run's queue position if it changed; False once it left the queue."""
        try:
            last = await self.js.get_last_msg(
                streams.RUNS, subjects.run_events(project, command_id), direct=True
            )
            if (last.subject or "").rsplit(".", 1)[1] in STARTED_KINDS:
                return False
            requested = await self.js.get_last_msg(
                streams.COMMANDS,
                f"{subjects.COMMANDS_PREFIX}.*.{project}.{command_id}",
                direct=True,
            )
        except NotFoundError:
            return True  # not stored everywhere yet
        priority = Priority((requested.subject or "").split(".")[2])
        infos = await asyncio.gather(
            *(self.js.consumer_info(streams.COMMANDS, f"executor-{p.value}") for p in ORDER),
            return_exceptions=True,
        )
        pending = {p: 0 for p in ORDER}
        delivered = {p: 0 for p in ORDER}
        running = 0
        for p, info in zip(ORDER, infos, strict=True):
            if isinstance(info, BaseException):
                continue  # no executor has declared this queue yet
            pending[p] = int(info.num_pending or 0)
            delivered[p] = int(info.delivered.stream_seq or 0) if info.delivered else 0
            running += int(info.num_ack_pending or 0)
        seq = int(requested.seq or 0)
        if seq <= delivered[priority]:
            return True  # handed to an executor: it starts now, or waits for a project slot
        ahead = min(pending[priority] - 1, seq - delivered[priority] - 1)
        ahead += sum(pending[p] for p in ORDER[: ORDER.index(priority)])
        position = max(0, ahead) + 1
        mean = await self._mean_run_s()
        estimate = math.ceil(position / running) * mean if mean is not None and running else None
        event = CommandQueued(
            command_id=command_id,
            project=project,
            position=position,
            estimate_s=round(estimate, 1) if estimate is not None else None,
            running=running,
        )
        envelope = CloudEvent.wrap(event, source=SOURCE, subject=command_id, project=project)
        # One event per position reached, whichever api replica and watcher sees it.
        event_id = str(uuid.uuid5(uuid.UUID(int=0), f"{command_id}.queued.{position}"))
        await self.js.publish(
            subjects.run_event(project, command_id, "queued"),
            envelope.model_copy(update={"id": event_id}).to_bytes(),
            headers={"Nats-Msg-Id": event_id},
            stream=streams.RUNS,
        )
        return True

    async def _mean_run_s(self) -> float | None:
        read_at, mean = self._mean
        if time.monotonic() - read_at < ESTIMATE_TTL_S:
            return mean
        durations = await self._recent_durations()
        mean = sum(durations) / len(durations) / 1000 if durations else None
        self._mean = (time.monotonic(), mean)
        return mean

    async def _recent_durations(self) -> list[int]:
        config = ConsumerConfig(
            ack_policy=AckPolicy.NONE,
            inactive_threshold=30.0,
            mem_storage=True,
            deliver_policy=DeliverPolicy.BY_START_TIME,
            opt_start_time=datetime.now(UTC) - RECENT_WINDOW,
        )
        sub = await self.js.pull_subscribe(
            subjects.any_run_event("completed"), stream=streams.LIFECYCLE, config=config
        )
        found: deque[int] = deque(maxlen=RECENT_RUNS)
        try:
            for _ in range(MAX_FETCHES):
                try:
                    msgs = await sub.fetch(RECENT_RUNS, timeout=0.5)
                except (NatsTimeoutError, TimeoutError):
                    break
                for msg in msgs:
                    data = orjson.loads(msg.data).get("data", {})
                    if data.get("reason") in ("exited", "timeout") and data.get("duration_ms"):
                        found.append(int(data["duration_ms"]))
                if msgs[-1].metadata.num_pending == 0:
                    break
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        return list(found)
