"""Trace context through a real broker, seen by the in-memory span exporter.

Publish and consume run in this process against a real nats-server, through the
same helpers the services use (`publish_span`, `consume_span`),
and through RDEV_LIFECYCLE, which receives run events by a server-side source.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from nats.aio.msg import Msg
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from rdev_common import streams, subjects
from rdev_common.broker import EmbeddedNats, connect
from rdev_common.events import CloudEvent, CommandCompleted, Reason
from rdev_common.settings import CommonSettings
from rdev_common.telemetry import (
    batch_span,
    consume_span,
    publish_span,
    trace_env,
    tracer,
)


@pytest.fixture
async def js(nats_server: EmbeddedNats) -> AsyncIterator[object]:
    nc = await connect(nats_server.url, "propagation-test")
    jetstream = nc.jetstream()
    await streams.ensure_streams(jetstream, CommonSettings())
    yield jetstream
    await nc.close()


def completed_event(command_id: str, traceparent: str | None) -> bytes:
    payload = CommandCompleted(
        command_id=command_id, project="p", exit_code=0, reason=Reason.EXITED, duration_ms=1
    )
    return CloudEvent.wrap(
        payload, source="test", subject=command_id, project="p", traceparent=traceparent
    ).to_bytes()


async def publish_and_consume(js: object, command_id: str, *, header: bool) -> Msg:
    subject = subjects.run_event("p", command_id, "completed")
    with tracer().start_as_current_span("request"), publish_span(subject, "completed") as carrier:
        headers = {"Nats-Msg-Id": command_id, **(carrier if header else {})}
        data = completed_event(command_id, carrier["traceparent"])
        await js.publish(subject, data, headers=headers, stream=streams.RUNS)  # type: ignore[attr-defined]
    consumer = streams.lifecycle_consumer(f"obs-{command_id}")
    await streams.ensure_consumer(js, consumer)  # type: ignore[arg-type]
    sub = await js.pull_subscribe_bind(consumer.config.durable_name, consumer.stream)  # type: ignore[attr-defined]
    msgs: list[Msg] = await sub.fetch(1, timeout=30)
    msg = msgs[0]
    with consume_span(msg):
        await msg.ack()
    return msg


def named(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


@pytest.mark.parametrize("header", [True, False], ids=["nats-header", "cloudevent-only"])
async def test_consumer_span_is_a_child_of_the_publish_span(
    js: object, exporter: InMemorySpanExporter, header: bool
) -> None:
    exporter.clear()
    msg = await publish_and_consume(js, f"c{int(header)}", header=header)
    assert msg.subject.startswith(subjects.RUNS_PREFIX) and msg.metadata.stream == streams.LIFECYCLE
    spans = exporter.get_finished_spans()
    published = named(spans, "publish completed")
    consumed = named(spans, "process rdev.runs.completed")
    assert published.kind is SpanKind.PRODUCER and consumed.kind is SpanKind.CONSUMER
    assert consumed.context.trace_id == published.context.trace_id
    assert consumed.parent is not None and consumed.parent.is_remote
    assert consumed.parent.span_id == published.context.span_id
    assert consumed.attributes["messaging.nats.stream"] == streams.LIFECYCLE


def test_trace_env_names_the_current_span() -> None:
    with tracer().start_as_current_span("run") as span:
        env = trace_env()
    ctx = span.get_span_context()
    flags = f"{int(ctx.trace_flags):02x}"
    assert env["TRACEPARENT"] == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{flags}"


def test_a_batch_span_continues_the_first_trace_and_links_all(
    exporter: InMemorySpanExporter,
) -> None:
    exporter.clear()
    contexts = []
    for name in ("first", "second"):
        with tracer().start_as_current_span(name) as span:
            contexts.append(span.get_span_context())
    payloads = [completed_event("b", f"00-{c.trace_id:032x}-{c.span_id:016x}-01") for c in contexts]
    with batch_span("audit write", payloads):
        pass
    write = named(exporter.get_finished_spans(), "audit write")
    assert write.parent is not None and write.parent.span_id == contexts[0].span_id
    assert write.context.trace_id == contexts[0].trace_id
    assert [link.context.span_id for link in write.links] == [c.span_id for c in contexts]
