"""Spans are recorded only once they have somewhere to go; their ids exist either way."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.propagate import inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from rdev_common.telemetry import _Provider


def test_no_processor_no_recording_but_ids_and_propagation_remain() -> None:
    provider = _Provider(Resource.create({}))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("unexported") as span:
        context = span.get_span_context()
        assert not span.is_recording()
        assert context.is_valid, "log lines take their trace and span ids from here"
        carrier: dict[str, str] = {}
        inject(carrier)
        assert carrier["traceparent"].split("-")[1] == format(context.trace_id, "032x")
        with tracer.start_as_current_span("child") as child:
            assert child.get_span_context().trace_id == context.trace_id

    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with tracer.start_as_current_span("exported") as span:
        assert span.is_recording()
    assert [s.name for s in memory.get_finished_spans()] == ["exported"]


def test_a_remote_parent_keeps_its_trace_when_not_recording() -> None:
    provider = _Provider(Resource.create({}))
    parent = trace.SpanContext(
        trace_id=0x1234, span_id=0x5678, is_remote=True, trace_flags=trace.TraceFlags(1)
    )
    ctx = trace.set_span_in_context(trace.NonRecordingSpan(parent))
    with provider.get_tracer("test").start_as_current_span("consume", context=ctx) as span:
        assert span.get_span_context().trace_id == 0x1234
        assert not span.is_recording()
