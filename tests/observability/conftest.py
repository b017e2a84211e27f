"""One system for the observability tests, with spans written to files and JSON logs.

The four services run as separate processes under `rdev up`, so an in-memory
exporter in the test process cannot see their spans. Each process instead
writes its finished spans to `$RDEV_DATA_DIR/spans-<service>.jsonl`
(`RDEV_SPANS_FILE=true`), and the tests rebuild the trace from those files: the
trace crosses real process boundaries and a real broker, exactly as in
production. The propagation helpers themselves are tested in-process with the
in-memory exporter (test_propagation.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation

from rdev_common.broker import free_port
from tests.e2e.sse_helpers import events_url, read_events
from tests.observability.support import Receiver
from tests.support import RdevSystem, system_env

PROJECT = "observed"
# A trace started by the "client": every span of the command must carry this trace id.
CLIENT_TRACE_ID = os.urandom(16).hex()
CLIENT_SPAN_ID = os.urandom(8).hex()


@dataclass
class TracedRun:
    command_id: str
    trace_id: str
    client_span_id: str
    request_id: str
    output: list[str]
    complete: dict[str, object]
    webhook_secret: str


@pytest.fixture(scope="session")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RdevSystem]:
    data_dir = tmp_path_factory.mktemp("rdev-observed")
    port, key = free_port(), "rdev_test_" + os.urandom(12).hex()
    env = system_env(
        data_dir,
        port,
        key,
        RDEV_SPANS_FILE="true",
        RDEV_LOG_FORMAT="json",
        RDEV_WEBHOOKS_RETRY_SCHEDULE="1,1,1",
        # The executor's shutdown grace: long enough for a short run to finish in it.
        RDEV_KILL_GRACE_S="5",
        # A few failed authentications from one address are enough for a 429.
        RDEV_RATE_LIMIT_AUTH_FAILURES="3",
    )
    system = RdevSystem(data_dir, port, key, env)
    # Generous: the start-up is slow when the machine is busy, and nothing here is timed.
    system.start(timeout=240)
    try:
        yield system
    finally:
        system.stop()


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.start()
    yield r
    r.stop()


@pytest.fixture(scope="session")
def traced_run(observed: RdevSystem, receiver: Receiver) -> TracedRun:
    """One command, submitted inside a client trace, with a webhook registered for it."""
    observed.create_project(PROJECT)
    with observed.client() as c:
        created = c.post(
            f"/projects/{PROJECT}/webhooks", json={"url": receiver.url, "events": ["*"]}
        )
        assert created.status_code == 201, created.text
        request_id = "obs-request-1"
        # Another test of this worker may have instrumented httpx in this process
        # (configure_telemetry): its client span would replace our `traceparent`.
        with suppress_instrumentation():
            response = c.post(
                f"/projects/{PROJECT}/shell",
                json={"command": 'echo "traceparent=$TRACEPARENT"'},
                headers={
                    "traceparent": f"00-{CLIENT_TRACE_ID}-{CLIENT_SPAN_ID}-01",
                    "X-Request-ID": request_id,
                },
            )
        assert response.status_code == 202, response.text
        assert response.headers["x-request-id"] == request_id
        command_id = response.json()["data"]["id"]
        status, events = read_events(c, events_url(PROJECT, command_id))
    assert status == 200
    complete = next(e.data for e in events if e.event == "complete")
    return TracedRun(
        command_id=command_id,
        trace_id=CLIENT_TRACE_ID,
        client_span_id=CLIENT_SPAN_ID,
        request_id=request_id,
        output=[e.data["line"] for e in events if e.event == "output"],
        complete=complete,
        webhook_secret=created.json()["data"]["secret"],
    )
