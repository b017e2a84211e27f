"""OpenTelemetry for every rdev process, and the trace context through NATS.

`configure_telemetry(service)` sets the SDK up once per process from the standard
`OTEL_*` variables. Spans are always recorded, so log lines carry trace and span
ids and the context travels through the broker, but they are exported only when
asked:

- `OTEL_TRACES_EXPORTER=otlp` (or, when that variable is unset, an
  `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`): OTLP over
  HTTP, batched (`OTEL_BSP_*`);
- `OTEL_TRACES_EXPORTER=console`: one JSON document per span on stdout;
- `RDEV_SPANS_FILE=true`: JSON lines in `$RDEV_DATA_DIR/spans-<service>.jsonl`
  (local debugging and the cross-process tests);
- `OTEL_SDK_DISABLED=true`: no SDK at all (a context that arrives is passed on).

On the broker the context travels twice: in the W3C `traceparent` NATS header
and in the CloudEvent `traceparent` attribute, so a consumer that only has the
stored event (replay, a sourced stream) still joins the trace.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import threading
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from nats.aio.msg import Msg
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Span, SpanKind
from pydantic_settings import BaseSettings, SettingsConfigDict

from rdev_common import subjects

if TYPE_CHECKING:  # only the database services need SQLAlchemy loaded
    from sqlalchemy.ext.asyncio import AsyncEngine

log = structlog.get_logger()

TRACER_NAME = "rdev"
_lock = threading.Lock()
_provider: TracerProvider | None = None
_service: str | None = None


class TelemetrySettings(BaseSettings):
    """rdev's own telemetry switches; the rest is the standard `OTEL_*` variables."""

    model_config = SettingsConfigDict(env_prefix="RDEV_", extra="ignore")

    data_dir: Path = Path(".rdev")
    spans_file: bool = False


class JsonLinesSpanExporter(SpanExporter):
    """Appends one JSON object per finished span to a file (one file per process)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(span_record(s), default=str) + "\n" for s in spans)
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write(lines)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """The fields of a span a reader needs to rebuild the tree."""
    ctx = span.get_span_context()
    parent = span.parent
    return {
        "service": span.resource.attributes.get("service.name"),
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": format(ctx.trace_id, "032x") if ctx else None,
        "span_id": format(ctx.span_id, "016x") if ctx else None,
        "parent_span_id": format(parent.span_id, "016x") if parent else None,
        "parent_remote": bool(parent and parent.is_remote),
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
    }


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def _exporter_names() -> list[str]:
    raw = os.environ.get("OTEL_TRACES_EXPORTER")
    if raw is None:
        endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
        )
        return ["otlp"] if endpoint else []
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    return [n for n in names if n != "none"]


def _processors(service: str, settings: TelemetrySettings) -> list[SpanProcessor]:
    processors: list[SpanProcessor] = []
    for name in _exporter_names():
        if name == "otlp":
            # Imported lazily: the exporter pulls in protobuf, which only exporting needs.
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            processors.append(BatchSpanProcessor(OTLPSpanExporter()))
        elif name == "console":
            processors.append(SimpleSpanProcessor(ConsoleSpanExporter()))
        else:
            log.warning("unknown OTEL_TRACES_EXPORTER ignored", exporter=name)
    if settings.spans_file:
        path = settings.data_dir.resolve() / f"spans-{service}.jsonl"
        processors.append(SimpleSpanProcessor(JsonLinesSpanExporter(path)))
    return processors


def configure_telemetry(
    service: str, settings: TelemetrySettings | None = None
) -> TracerProvider | None:
    """Set the tracer provider of this process up once; later calls return the first one.

    Returns None when `OTEL_SDK_DISABLED` is true.
    """
    global _provider, _service
    with _lock:
        if _service is not None:
            return _provider
        _service = service
        if _env_flag("OTEL_SDK_DISABLED"):
            return None
        settings = settings or TelemetrySettings()
        resource = Resource.create({"service.name": f"rdev-{service}", "service.namespace": "rdev"})
        provider = TracerProvider(resource=resource)
        for processor in _processors(service, settings):
            provider.add_span_processor(processor)
        trace.set_tracer_provider(provider)
        _provider = provider
    _instrument_httpx(provider)
    return provider


def _instrument_httpx(provider: TracerProvider) -> None:
    """Every httpx request (webhook deliveries) becomes a client span with `traceparent`."""
    try:
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    except ImportError:  # httpx instrumentation not installed in this image
        return
    instrumentor = HTTPXClientInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(tracer_provider=provider)


def shutdown_telemetry(timeout_ms: int = 5000) -> None:
    """Export what is buffered; called last on the way out.

    Only a flush: the SDK shuts its exporters down at interpreter exit, and a
    process that hosts several apps (tests) keeps tracing after one of them stops.
    """
    if _provider is not None:
        _provider.force_flush(timeout_ms)


@functools.cache
def tracer() -> trace.Tracer:
    """rdev's tracer, made once: `get_tracer` builds a new one on every call, and
    the provider can be set only once per process (a tracer taken before that
    follows it when it is set)."""
    return trace.get_tracer(TRACER_NAME)


class ChildSpansOnly(trace.Tracer):
    """A tracer that starts spans only inside a trace.

    A query outside any (a dispatcher's poll, a projection's idle check) would
    otherwise be a trace of its own, every second, in every service.
    """

    def __init__(self, inner: trace.Tracer) -> None:
        self.inner = inner

    def start_span(
        self, name: str, context: Context | None = None, *args: Any, **kwargs: Any
    ) -> Span:
        if not trace.get_current_span(context).get_span_context().is_valid:
            return trace.INVALID_SPAN
        return self.inner.start_span(name, context, *args, **kwargs)

    @contextmanager
    def start_as_current_span(  # type: ignore[override]
        self, name: str, context: Context | None = None, *args: Any, **kwargs: Any
    ) -> Iterator[Span]:
        span = self.start_span(name, context, *args, **kwargs)
        with trace.use_span(span, end_on_exit=True) as current:
            yield current


def instrument_engine(engine: AsyncEngine) -> None:
    """SQL statements of `engine` become client spans of the current trace (none outside one)."""
    from opentelemetry import metrics
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer

    usage = metrics.get_meter(TRACER_NAME).create_up_down_counter(
        "db.client.connections.usage", unit="connections"
    )
    sql_tracer = ChildSpansOnly(trace.get_tracer("opentelemetry.instrumentation.sqlalchemy"))
    EngineTracer(sql_tracer, engine.sync_engine, usage)  # type: ignore[no-untyped-call]


# --- the trace context on the wire ---------------------------------------------------------


def trace_headers() -> dict[str, str]:
    """`traceparent` (and `tracestate`) of the current span, for NATS or HTTP headers."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def current_traceparent() -> str | None:
    return trace_headers().get("traceparent")


def trace_env() -> dict[str, str]:
    """TRACEPARENT/TRACESTATE for a command's environment, so a traced command joins the trace."""
    return {key.upper(): value for key, value in trace_headers().items()}


def _cloudevent_traceparent(data: bytes | None) -> str | None:
    if not data:
        return None
    try:
        value = json.loads(data).get("traceparent")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def context_from(headers: Mapping[str, str] | None, data: bytes | None = None) -> Context:
    """The remote context of a message: its `traceparent` header, else its CloudEvent's."""
    carrier: MutableMapping[str, str] = dict(headers or {})
    if "traceparent" not in carrier:
        traceparent = _cloudevent_traceparent(data)
        if traceparent:
            carrier["traceparent"] = traceparent
    return propagate.extract(carrier, context=Context())


def subject_template(subject: str) -> str:
    """A low-cardinality name for a subject: ids and projects dropped."""
    parts = subject.split(".")
    if subject.startswith(subjects.COMMANDS_PREFIX + ".") and len(parts) >= 3:
        return ".".join(parts[:3])
    if subject.startswith(subjects.RUNS_PREFIX + ".") and len(parts) == 5:
        return f"{subjects.RUNS_PREFIX}.{parts[4]}"
    if subject.startswith(subjects.WEBHOOKS_PREFIX + ".") and len(parts) >= 4:
        return f"{subjects.WEBHOOKS_PREFIX}.{parts[-1]}"
    return subject


def _message_attributes(msg: Msg) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "messaging.system": "nats",
        "messaging.destination.name": msg.subject,
        "messaging.operation.type": "process",
    }
    if msg.headers and "Nats-Msg-Id" in msg.headers:
        attributes["messaging.message.id"] = msg.headers["Nats-Msg-Id"]
    with contextlib.suppress(Exception):  # a core NATS message has no JetStream metadata
        meta = msg.metadata
        attributes["messaging.nats.stream"] = meta.stream
        attributes["messaging.nats.stream_sequence"] = meta.sequence.stream
        attributes["messaging.consumer.group.name"] = meta.consumer
        attributes["messaging.nats.delivered"] = meta.num_delivered
    return attributes


@contextmanager
def publish_span(subject: str, name: str | None = None) -> Iterator[dict[str, str]]:
    """A producer span around one publish; yields the headers that carry it.

    Put the yielded `traceparent` into the NATS headers and the CloudEvent, so the
    consumer's span becomes a child of this one.
    """
    attributes = {
        "messaging.system": "nats",
        "messaging.destination.name": subject,
        "messaging.operation.type": "send",
    }
    with tracer().start_as_current_span(
        f"publish {name or subject_template(subject)}",
        kind=SpanKind.PRODUCER,
        attributes=attributes,
    ):
        yield trace_headers()


@contextmanager
def consume_span(msg: Msg, name: str | None = None) -> Iterator[Span]:
    """A consumer span for handling `msg`, a child of the span that published it."""
    with tracer().start_as_current_span(
        f"process {name or subject_template(msg.subject)}",
        context=context_from(msg.headers, msg.data),
        kind=SpanKind.CONSUMER,
        attributes=_message_attributes(msg),
    ) as span:
        yield span


def _payload_bytes(payload: bytes | str) -> bytes:
    return payload.encode() if isinstance(payload, str) else payload


@contextmanager
def event_span(
    name: str,
    payload: bytes | str,
    attributes: Mapping[str, Any] | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
) -> Iterator[Span]:
    """A span continuing the trace recorded in a stored CloudEvent (its `traceparent`).

    For work done later from a stored event, e.g. a webhook delivery attempt.
    """
    with tracer().start_as_current_span(
        name,
        context=context_from(None, _payload_bytes(payload)),
        kind=kind,
        attributes=dict(attributes or {}),
    ) as span:
        yield span


@contextmanager
def batch_span(
    name: str, payloads: Sequence[bytes | str], attributes: Mapping[str, Any] | None = None
) -> Iterator[Span]:
    """One span for a batch of stored CloudEvents handled together (a projection write).

    It is a child of the first event that carries a trace context, so that trace
    shows the write, and links to every event's span context.
    """
    contexts = [trace.get_current_span(context_from(None, _payload_bytes(p))) for p in payloads]
    remote = [span.get_span_context() for span in contexts]
    valid = [ctx for ctx in remote if ctx.is_valid]
    parent = trace.set_span_in_context(trace.NonRecordingSpan(valid[0])) if valid else Context()
    with tracer().start_as_current_span(
        name,
        context=parent,
        kind=SpanKind.CONSUMER,
        links=[trace.Link(ctx) for ctx in valid],
        attributes={**(attributes or {}), "messaging.batch.message_count": len(payloads)},
    ) as span:
        yield span


# --- logs --------------------------------------------------------------------------------


def add_trace_context(
    _logger: Any, _method: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    """structlog processor: the current trace and span ids on every log line."""
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event_dict.setdefault("trace_id", format(ctx.trace_id, "032x"))
        event_dict.setdefault("span_id", format(ctx.span_id, "016x"))
    return event_dict
