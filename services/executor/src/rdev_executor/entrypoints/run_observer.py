"""Traces and metrics of one run, around the runner.

The run joins the trace of the request that queued it: a consumer span (child of
the api's publish span, found in the message's `traceparent`) with a `run` span
inside, whose context the command receives as TRACEPARENT and the run's events
carry on to webhooks and audit.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from nats.aio.msg import Msg
from opentelemetry.trace import Span

from rdev_common.events import CommandRequested
from rdev_common.metrics import ACTIVE_RUNS, COMMANDS_COMPLETED, RUN_DURATION
from rdev_common.telemetry import consume_span, trace_env, tracer
from rdev_executor.domain.outcome import Outcome


@dataclass
class RunObservation:
    span: Span
    priority: str
    began: float = field(default_factory=time.monotonic)
    env: dict[str, str] = field(default_factory=dict)

    def finished(self, outcome: Outcome | None) -> None:
        """Record how the run ended; None means it had already ended before."""
        if outcome is None:
            self.span.set_attribute("rdev.run.skipped", True)
            return
        self.span.set_attribute("rdev.exit_code", outcome.exit_code)
        self.span.set_attribute("rdev.reason", outcome.reason)
        COMMANDS_COMPLETED.labels(
            priority=self.priority, reason=outcome.reason, exit_code=str(outcome.exit_code)
        ).inc()
        RUN_DURATION.labels(priority=self.priority, reason=outcome.reason).observe(
            time.monotonic() - self.began
        )


@contextmanager
def observe_run(msg: Msg, req: CommandRequested) -> Iterator[RunObservation]:
    """Spans, the active-runs gauge and completion metrics around one run."""
    priority = str(req.priority)
    attributes = {
        "rdev.command_id": req.command_id,
        "rdev.project": req.project,
        "rdev.priority": priority,
    }
    with (
        consume_span(msg, req.kind),
        tracer().start_as_current_span("run", attributes=attributes) as span,
    ):
        ACTIVE_RUNS.inc()
        try:
            yield RunObservation(span, priority, env=trace_env())
        finally:
            ACTIVE_RUNS.dec()
