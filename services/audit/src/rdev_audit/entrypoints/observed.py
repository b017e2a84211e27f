"""Traces and lag of the audit projection.

A batch is written in one transaction, so it gets one span: a child of the first
event's trace (the run that produced it), linked to every event of the batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

from rdev_audit.service_layer.projector import Source, StreamMessage
from rdev_common.metrics import AUDIT_EVENTS_PROJECTED, AUDIT_PROJECTION_LAG
from rdev_common.telemetry import batch_span


@contextmanager
def projection_span(source: Source, batch: Sequence[StreamMessage]) -> Iterator[None]:
    """Around writing `batch`; afterwards the projection lag is the age of its last event."""
    attributes = {
        "messaging.system": "nats",
        "messaging.nats.stream": source.stream,
        "rdev.audit.first_seq": batch[0].seq if batch else 0,
    }
    with batch_span("audit write", [m.data for m in batch], attributes):
        yield
    AUDIT_EVENTS_PROJECTED.labels(stream=source.stream).inc(len(batch))
    if batch:
        lag = (datetime.now(UTC) - batch[-1].stored_at).total_seconds()
        AUDIT_PROJECTION_LAG.set(max(0.0, lag))
