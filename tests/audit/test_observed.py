"""The audit write span continues the first event's trace and links every event, whether the
context comes from the `traceparent` header or, failing that, from the CloudEvent."""

from __future__ import annotations

from datetime import UTC, datetime

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext

from rdev_audit.entrypoints.observed import projection_span
from rdev_audit.service_layer.projector import Source, StreamMessage
from rdev_common.events import CloudEvent, CommandStarted
from rdev_common.telemetry import tracer

SOURCE = Source("RDEV_LIFECYCLE", "lifecycle")


def traceparent(ctx: SpanContext) -> str:
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-01"


def message(seq: int, in_event: str | None, in_header: str | None) -> StreamMessage:
    started = CommandStarted(command_id=f"c{seq}", project="p", executor="host")
    event = CloudEvent.wrap(
        started, source="t", subject=f"c{seq}", project="p", traceparent=in_event
    )
    headers = {"traceparent": in_header} if in_header else None
    return StreamMessage(seq, "rdev.runs.p.c.started", event.to_bytes(), datetime.now(UTC), headers)


def test_write_span_is_a_child_of_the_first_event_and_links_all(
    exporter: InMemorySpanExporter,
) -> None:
    contexts = []
    for name in ("first", "second", "third"):
        with tracer().start_as_current_span(name) as span:
            contexts.append(span.get_span_context())
    first, second, third = (traceparent(c) for c in contexts)
    batch = [
        message(1, in_event=first, in_header=first),  # as the services publish: both
        message(2, in_event=second, in_header=None),  # only the CloudEvent attribute
        message(3, in_event=None, in_header=third),  # only the header
        message(4, in_event=None, in_header=None),  # no trace at all: not linked
    ]
    exporter.clear()
    with projection_span(SOURCE, batch):
        pass
    (write,) = [s for s in exporter.get_finished_spans() if s.name == "audit write"]
    assert write.parent is not None and write.parent.span_id == contexts[0].span_id
    assert write.context.trace_id == contexts[0].trace_id
    assert [link.context.span_id for link in write.links] == [c.span_id for c in contexts]
    assert write.attributes is not None
    assert write.attributes["messaging.batch.message_count"] == 4
