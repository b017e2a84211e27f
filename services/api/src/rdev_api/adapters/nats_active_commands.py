"""Which commands of a project are queued or running, from the event log itself.

A command is active while its `requested` event is in RDEV_RUNS without a `completed`
event. The stream's per-subject counts answer this in one request, whatever the output.
"""

from __future__ import annotations

from nats.js import JetStreamContext

from rdev_common import subjects
from rdev_common.streams import RUNS


class NatsActiveCommands:
    def __init__(self, js: JetStreamContext) -> None:
        self.js = js

    async def _command_ids(self, project: str, kind: str) -> set[str]:
        pattern = subjects.project_runs_of_kind(project, kind)
        info = await self.js.stream_info(RUNS, subjects_filter=pattern)
        found = info.state.subjects or {}
        return {subjects.parse_run_subject(s)[1] for s in found}

    async def of_project(self, project: str) -> list[str]:
        requested = await self._command_ids(project, "requested")
        if not requested:
            return []
        completed = await self._command_ids(project, "completed")
        return sorted(requested - completed)
