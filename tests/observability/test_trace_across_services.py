"""One command, one trace: api → NATS → executor → NATS → webhooks (delivery) and audit."""

from __future__ import annotations

from typing import Any

import pytest

from tests.observability.conftest import TracedRun
from tests.observability.support import Receiver, one, read_spans, summary, trace_of
from tests.support import RdevSystem, wait_for

pytestmark = pytest.mark.e2e


def spans_of_trace(system: RdevSystem, trace_id: str) -> list[dict[str, Any]]:
    """Wait until all four services wrote their spans of the trace (each exports on span end)."""

    def complete() -> list[dict[str, Any]] | None:
        spans = trace_of(read_spans(system.data_dir), trace_id)
        names = {(s["service"], s["name"]) for s in spans}
        wanted = {
            ("rdev-executor", "publish command.completed"),
            ("rdev-webhooks", "process rdev.runs.completed"),
            ("rdev-webhooks", "webhook delivery"),
            ("rdev-audit", "audit write"),
        }
        return spans if wanted <= names else None

    return wait_for(complete, 60, f"spans of trace {trace_id} from every service")


def ancestors(spans: list[dict[str, Any]], span: dict[str, Any]) -> list[dict[str, Any]]:
    by_id = {s["span_id"]: s for s in spans}
    chain = []
    while span["parent_span_id"] in by_id:
        span = by_id[span["parent_span_id"]]
        chain.append(span)
    return chain


def test_one_trace_spans_every_service(observed: RdevSystem, traced_run: TracedRun) -> None:
    spans = spans_of_trace(observed, traced_run.trace_id)
    services = {s["service"] for s in spans}
    assert services == {"rdev-api", "rdev-executor", "rdev-webhooks", "rdev-audit"}, summary(spans)


def test_parent_child_links_hold_across_nats(observed: RdevSystem, traced_run: TracedRun) -> None:
    spans = spans_of_trace(observed, traced_run.trace_id)
    # api: the server span continues the client's traceparent; the publish is inside it.
    server = one(spans, service="rdev-api", kind="SERVER", name="POST /projects/{project_id}/shell")
    assert server["parent_span_id"] == traced_run.client_span_id and server["parent_remote"]
    publish = one(spans, service="rdev-api", name="publish command.requested")
    assert server in ancestors(spans, publish)
    # executor: the consumer span is a child of the api's publish span, across the broker.
    consumed = one(spans, service="rdev-executor", name="process command.requested")
    assert consumed["parent_span_id"] == publish["span_id"] and consumed["parent_remote"]
    assert consumed["attributes"]["messaging.destination.name"].endswith(traced_run.command_id)
    run = one(spans, service="rdev-executor", name="run")
    assert run["parent_span_id"] == consumed["span_id"]
    assert run["attributes"]["rdev.command_id"] == traced_run.command_id
    assert run["attributes"]["rdev.exit_code"] == 0
    completed = one(spans, service="rdev-executor", name="publish command.completed")
    assert completed["parent_span_id"] == run["span_id"]
    # webhooks: the lifecycle consumer continues from the executor's publish span.
    webhook_consumed = one(spans, service="rdev-webhooks", name="process rdev.runs.completed")
    assert webhook_consumed["parent_span_id"] == completed["span_id"]
    # audit: each batch write is a child of the publish span of its first event, and the
    # SQL statements of the write are children of it.
    publishers = {s["span_id"] for s in spans if s["kind"] == "PRODUCER"}
    writes = [s for s in spans if s["service"] == "rdev-audit" and s["name"] == "audit write"]
    assert writes and all(w["parent_span_id"] in publishers for w in writes), summary(spans)
    write_ids = {w["span_id"] for w in writes}
    statements = [s for s in spans if s["service"] == "rdev-audit" and s["kind"] == "CLIENT"]
    assert statements and all(s["parent_span_id"] in write_ids for s in statements)


def test_each_webhook_delivery_joins_the_trace(
    observed: RdevSystem, traced_run: TracedRun, receiver: Receiver
) -> None:
    spans = spans_of_trace(observed, traced_run.trace_id)
    deliveries = [s for s in spans if s["name"] == "webhook delivery"]
    publishers = {s["span_id"]: s["name"] for s in spans if s["kind"] == "PRODUCER"}
    assert deliveries, summary(spans)
    for delivery in deliveries:
        assert delivery["parent_span_id"] in publishers
        assert delivery["attributes"]["rdev.outcome"] == "success"
    # The receiver gets the trace too (httpx instrumentation), so its own spans can join.
    got = [
        r["headers"].get("traceparent", "")
        for r in receiver.requests
        if r["body"].get("subject") == traced_run.command_id
    ]
    assert got and all(tp.split("-")[1] == traced_run.trace_id for tp in got), got


def test_the_command_sees_its_run_span_as_traceparent(
    observed: RdevSystem, traced_run: TracedRun
) -> None:
    spans = spans_of_trace(observed, traced_run.trace_id)
    run = one(spans, service="rdev-executor", name="run")
    assert traced_run.output == [f"traceparent=00-{traced_run.trace_id}-{run['span_id']}-01"]


def test_events_carry_the_traceparent_in_the_cloudevent(
    traced_run: TracedRun, receiver: Receiver
) -> None:
    bodies = [
        r["body"] for r in receiver.requests if r["body"].get("subject") == traced_run.command_id
    ]
    assert bodies
    assert all(b["traceparent"].split("-")[1] == traced_run.trace_id for b in bodies), bodies
