"""Traces and lag of the audit projection.

A batch is written in one transaction, so it gets one span: a child of the first
event's trace (the run that produced it), linked to every event of the batch.
Each event's context is read from its `traceparent` NATS header, the CloudEvent
being parsed only when a message has none: parsing every payload a second time
just for its trace context cost a tenth of the projection's CPU.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanContext, SpanKind

from rdev_audit.service_layer.projector import Source, StreamMessage
from rdev_common.metrics import AUDIT_EVENTS_PROJECTED, AUDIT_PROJECTION_LAG
from rdev_common.telemetry import context_from, tracer


def _span_contexts(batch: Sequence[StreamMessage]) -> list[SpanContext]:
    remote = (trace.get_current_span(context_from(m.headers, m.data)) for m in batch)
    return [ctx for ctx in (span.get_span_context() for span in remote) if ctx.is_valid]


@contextmanager
def projection_span(source: Source, batch: Sequence[StreamMessage]) -> Iterator[None]:
    """Around writing `batch`; afterwards the projection lag is the age of its last event."""
    linked = _span_contexts(batch)
    parent = trace.set_span_in_context(trace.NonRecordingSpan(linked[0])) if linked else Context()
    attributes: dict[str, Any] = {
        "messaging.system": "nats",
        "messaging.nats.stream": source.stream,
        "rdev.audit.first_seq": batch[0].seq if batch else 0,
        "messaging.batch.message_count": len(batch),
    }
    with tracer().start_as_current_span(
        "audit write",
        context=parent,
        kind=SpanKind.CONSUMER,
        links=[trace.Link(ctx) for ctx in linked],
        attributes=attributes,
    ):
        yield
    AUDIT_EVENTS_PROJECTED.labels(stream=source.stream).inc(len(batch))
    if batch:
        lag = (datetime.now(UTC) - batch[-1].stored_at).total_seconds()
        AUDIT_PROJECTION_LAG.set(max(0.0, lag))
