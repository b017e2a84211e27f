"""Reads a project's lifecycle events from RDEV_LIFECYCLE for webhook replay."""

from __future__ import annotations

import contextlib
from datetime import datetime

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from rdev_api.service_layer.webhook_ports import LoggedEvent
from rdev_common import streams, subjects

BATCH = 256


class NatsLifecycleLog:
    def __init__(self, js: JetStreamContext) -> None:
        self.js = js

    async def since(
        self, project: str, *, seq: int | None, time: datetime | None, limit: int
    ) -> list[LoggedEvent]:
        config = ConsumerConfig(
            ack_policy=AckPolicy.NONE,
            inactive_threshold=30.0,
            mem_storage=True,
            deliver_policy=DeliverPolicy.BY_START_TIME if time else DeliverPolicy.BY_START_SEQUENCE,
            opt_start_time=time,
            opt_start_seq=None if time else max(1, seq or 1),
        )
        sub = await self.js.pull_subscribe(
            subjects.project_run_events(project), stream=streams.LIFECYCLE, config=config
        )
        found: list[LoggedEvent] = []
        try:
            while len(found) < limit:
                try:
                    msgs = await sub.fetch(min(BATCH, limit - len(found)), timeout=0.5)
                except (NatsTimeoutError, TimeoutError):
                    break
                for msg in msgs:
                    found.append(
                        LoggedEvent(streams.LIFECYCLE, msg.metadata.sequence.stream, msg.data)
                    )
                if msgs[-1].metadata.num_pending == 0:
                    break
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        return found
