"""Logs: JSON lines with service, trace, request, command and project context; no secret."""

from __future__ import annotations

import json
import os
from typing import Any

import httpx
import pytest
import structlog
from opentelemetry import trace

from rdev_common.logging import configure_logging
from tests.observability.conftest import PROJECT, TracedRun
from tests.support import RdevSystem, wait_for

pytestmark = pytest.mark.e2e


def json_lines(system: RdevSystem) -> list[dict[str, Any]]:
    """The log's whole JSON lines. The services are still writing: the last line read may
    be only the start of one (no newline yet), and is left for the next read."""
    text = system.log_path.read_text(errors="replace")
    lines = text[: text.rfind("\n") + 1].splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def test_service_logs_are_json_with_context(observed: RdevSystem, traced_run: TracedRun) -> None:
    def completed_line() -> dict[str, Any] | None:
        for line in json_lines(observed):
            if line.get("event") == "command completed" and (
                line.get("command_id") == traced_run.command_id
            ):
                return line
        return None

    done = wait_for(completed_line, 30, "the executor's `command completed` line")
    assert done["service"] == "executor" and done["project"] == PROJECT
    assert done["trace_id"] == traced_run.trace_id and len(done["span_id"]) == 16

    def request_handled() -> list[dict[str, Any]]:
        return [
            x
            for x in json_lines(observed)
            if x.get("event") == "request handled" and x.get("request_id") == traced_run.request_id
        ]

    # The api logs a request once its response has gone out: the line may come later.
    submitted = wait_for(request_handled, 30, "the api's `request handled` line")
    lines = json_lines(observed)
    assert lines and all({"event", "level", "timestamp", "service"} <= set(x) for x in lines)
    assert {x["service"] for x in lines} >= {"api", "executor", "webhooks", "audit"}
    assert len(submitted) == 1, submitted
    line = submitted[0]
    assert line["trace_id"] == traced_run.trace_id
    assert line["route"] == "/projects/{project_id}/shell" and line["status"] == 202


def test_no_secret_reaches_the_logs(observed: RdevSystem, traced_run: TracedRun) -> None:
    wrong_key = "rdev_" + os.urandom(24).hex()
    httpx.get(f"{observed.base_url}/projects", headers={"X-API-Key": wrong_key})
    httpx.get(f"{observed.base_url}/projects", headers={"Authorization": f"Bearer {wrong_key}"})
    with observed.client() as c:
        c.get(f"/projects/{PROJECT}/webhooks")
    text = observed.log_path.read_text(errors="replace")
    assert "request handled" in text
    for secret in (observed.api_key, traced_run.webhook_secret, wrong_key):
        assert secret not in text


def test_redaction_and_trace_ids_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    """The safety net itself: secret-looking values and secret-named fields are masked."""
    configure_logging("json", "info", service="test")
    log = structlog.get_logger("redaction-test")
    key, signing = "rdev_" + "k" * 43, "whsec_" + "c2VjcmV0LXNpZ25pbmcta2V5"
    try:
        with trace.get_tracer("test").start_as_current_span("logging") as span:
            log.info(
                "sensitive",
                api_key="anything",
                note=f"key {key} and {signing}",
                headers={"Authorization": f"Bearer {key}", "accept": "*/*"},
                module="rdev_api",
            )
            try:
                raise RuntimeError(f"failed with {key}")
            except RuntimeError:
                log.exception("boom")
        out = capsys.readouterr().err
    finally:
        structlog.reset_defaults()
    assert key not in out and signing not in out
    first, second = (json.loads(x) for x in out.strip().splitlines()[-2:])
    assert first["api_key"] == "[REDACTED]"
    assert first["headers"] == {"Authorization": "[REDACTED]", "accept": "*/*"}
    assert first["note"] == "key rdev_[REDACTED] and whsec_[REDACTED]"
    assert first["module"] == "rdev_api"
    span_ctx = span.get_span_context()
    if span_ctx.is_valid:  # tracing is on unless OTEL_SDK_DISABLED is set
        assert first["trace_id"] == format(span_ctx.trace_id, "032x")
    assert "rdev_[REDACTED]" in second["exception"]
