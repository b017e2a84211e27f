"""An EventLog that publishes lifecycle events in producer spans and counts output bytes.

Output batches get no span of their own (a chatty run would make thousands); they
carry the run's context, which the inner log puts in headers and the CloudEvent.
"""

from __future__ import annotations

from dataclasses import dataclass

from rdev_common import subjects
from rdev_common.events import CommandCompleted, EventData, OutputBatch
from rdev_common.metrics import OUTPUT_BYTES
from rdev_common.telemetry import publish_span
from rdev_executor.service_layer.ports import EventLog


@dataclass
class TracedEventLog:
    inner: EventLog

    async def publish(
        self,
        event: EventData,
        kind: str,
        *,
        project: str,
        command_id: str,
        event_id: str | None = None,
    ) -> int:
        if isinstance(event, CommandCompleted):
            OUTPUT_BYTES.inc(event.bytes)
        with publish_span(subjects.run_event(project, command_id, kind), event.kind):
            return await self.inner.publish(
                event, kind, project=project, command_id=command_id, event_id=event_id
            )

    async def publish_output(self, batch: OutputBatch, *, project: str) -> int:
        return await self.inner.publish_output(batch, project=project)

    async def exists(self, project: str, command_id: str, kind: str) -> bool:
        return await self.inner.exists(project, command_id, kind)

    async def latest_kind(self, project: str, command_id: str) -> str | None:
        return await self.inner.latest_kind(project, command_id)
