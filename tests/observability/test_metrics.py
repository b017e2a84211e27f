"""GET /metrics on every service: Prometheus text, and counters that move as commands run."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.sse_helpers import events_url, read_events, submit
from tests.observability.conftest import PROJECT, TracedRun
from tests.observability.support import health_port, metrics_text, sample
from tests.support import RdevSystem, wait_for

pytestmark = pytest.mark.e2e


def run_to_completion(system: RdevSystem, command: str, **extra: object) -> dict[str, object]:
    with system.client() as c:
        command_id = submit(c, PROJECT, command, **extra)
        status, events = read_events(c, events_url(PROJECT, command_id))
    assert status == 200
    return next(e.data for e in events if e.event == "complete")


def test_every_service_serves_prometheus_metrics(
    observed: RdevSystem, traced_run: TracedRun
) -> None:
    assert "rdev_commands_submitted_total" in metrics_text(f"{observed.base_url}/metrics")
    for service, family in (
        ("executor", "rdev_active_runs"),
        ("webhooks", "rdev_webhook_attempts_total"),
        ("audit", "rdev_audit_projection_lag_seconds"),
    ):
        text = metrics_text(f"http://127.0.0.1:{health_port(observed, service)}/metrics")
        assert f"# TYPE {family}" in text, service


def test_api_counters_move_as_commands_are_submitted(
    observed: RdevSystem, traced_run: TracedRun
) -> None:
    url = f"{observed.base_url}/metrics"
    route = {"method": "POST", "route": "/projects/{project_id}/shell", "status": "202"}
    before = metrics_text(url)
    run_to_completion(observed, "true", priority="high")
    after = metrics_text(url)
    submitted = "rdev_commands_submitted_total"
    assert (
        sample(after, submitted, priority="high") == sample(before, submitted, priority="high") + 1
    )
    requests = "rdev_http_request_duration_seconds_count"
    assert sample(after, requests, **route) == sample(before, requests, **route) + 1
    assert "rdev_sse_connections " in after


def test_executor_counters_move_as_commands_run(
    observed: RdevSystem, traced_run: TracedRun
) -> None:
    url = f"http://127.0.0.1:{health_port(observed, 'executor')}/metrics"
    labels = {"priority": "low", "reason": "exited", "exit_code": "3"}
    before = metrics_text(url)
    complete = run_to_completion(observed, "printf 'abcdefghij\\n'; exit 3", priority="low")
    assert complete["exit_code"] == 3
    after = metrics_text(url)
    done = "rdev_commands_completed_total"
    assert sample(after, done, **labels) == sample(before, done, **labels) + 1
    runs = "rdev_run_duration_seconds_count"
    low = {"priority": "low", "reason": "exited"}
    assert sample(after, runs, **low) == sample(before, runs, **low) + 1
    out = "rdev_output_bytes_total"
    assert sample(after, out) >= sample(before, out) + len("abcdefghij\n")
    assert sample(after, "rdev_active_runs") == 0
    # Queue depth and lag come from consumer info, refreshed every few seconds.
    wait_for(
        lambda: 'rdev_queue_depth{priority="low"}' in metrics_text(url),
        30,
        "queue depth per priority in the executor's metrics",
    )
    assert 'rdev_consumer_lag_messages{consumer="executor-high"}' in metrics_text(url)


def test_webhook_and_audit_metrics_move(observed: RdevSystem, traced_run: TracedRun) -> None:
    webhooks = f"http://127.0.0.1:{health_port(observed, 'webhooks')}/metrics"
    wait_for(
        lambda: (
            sample(metrics_text(webhooks), "rdev_webhook_attempts_total", outcome="success") >= 1
        ),
        60,
        "a successful webhook attempt counted",
    )
    assert (
        sample(
            metrics_text(webhooks),
            "rdev_webhook_circuit_state",
            rdev_webhook_circuit_state="closed",
        )
        == 1
    )
    audit = f"http://127.0.0.1:{health_port(observed, 'audit')}/metrics"
    projected = "rdev_audit_events_projected_total"
    wait_for(
        lambda: sample(metrics_text(audit), projected, stream="RDEV_LIFECYCLE") >= 3,
        60,
        "lifecycle events of the traced run counted as projected by audit",
    )
    assert "rdev_audit_projection_lag_seconds " in metrics_text(audit)


def test_rate_limit_rejections_are_counted(observed: RdevSystem) -> None:
    url = f"{observed.base_url}/metrics"
    before = sample(metrics_text(url), "rdev_rate_limit_rejections_total", limit="auth")
    statuses = []
    for _ in range(20):
        wrong = httpx.get(f"{observed.base_url}/projects", headers={"X-API-Key": "rdev_wrong"})
        statuses.append(wrong.status_code)
        if wrong.status_code == 429:
            break
    assert statuses[-1] == 429, statuses
    after = sample(metrics_text(url), "rdev_rate_limit_rejections_total", limit="auth")
    assert after == before + 1


def test_health_endpoints_answer_on_every_service(observed: RdevSystem) -> None:
    for service in ("executor", "webhooks", "audit"):
        base = f"http://127.0.0.1:{health_port(observed, service)}"
        assert httpx.get(f"{base}/healthz").json() == {"data": {"status": "ok"}}
        assert httpx.get(f"{base}/readyz").status_code == 200
