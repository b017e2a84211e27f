"""A database outage: the system's private PostgreSQL is stopped for over 30 s under
submits and open streams, then started again.

What needs only the broker and cached keys keeps working (submit, SSE, /output,
GET /commands/{id}); what needs the database answers 503 with Retry-After, never a
500 or a reset connection; the outage is logged once, not per request; audit and
webhooks catch up on their own afterwards, and nothing is lost.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.sse_helpers import events_url, read_events, submit
from tests.postgres import PrivateServer, private_server
from tests.support import RdevSystem, start_system, wait_for
from tests.webhooks.receiver import Receiver
from tests.webhooks.system import register

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]

OUTAGE_S = 35.0
PROJECT = "outage"


@pytest.fixture
def database() -> Iterator[PrivateServer]:
    with private_server() as server:
        yield server


@pytest.fixture
def system(tmp_path: Path, database: PrivateServer) -> Iterator[RdevSystem]:
    # A short cache ttl: the outage outlasts it many times over.
    yield from start_system(
        tmp_path / "rdev", RDEV_DATABASE_URL=database.url, RDEV_IDENTITY_CACHE_TTL_S="5"
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.start()
    yield server
    server.stop()


class Stream(threading.Thread):
    """An SSE client following one run from before the outage to its end."""

    def __init__(self, system: RdevSystem, command_id: str) -> None:
        super().__init__(daemon=True)
        self.system, self.command_id = system, command_id
        self.events: list[Any] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.system.client() as client:
                _, self.events = read_events(
                    client, events_url(PROJECT, self.command_id), timeout=300
                )
        except BaseException as exc:  # reported by the test
            self.error = exc


def call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """The answer, or the test fails naming a transport error (a reset, a disconnect)."""
    try:
        return client.request(method, path, **kwargs)
    except httpx.TransportError as exc:
        raise AssertionError(f"{method} {path}: {exc!r}") from exc


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, (response.request.url, response.text)
    assert int(response.headers["Retry-After"]) > 0
    error = response.json()["error"]
    assert error["code"] == "unavailable" and error["message"] == "database unavailable"


def test_a_database_outage_answers_503_keeps_the_command_path_and_loses_nothing(
    system: RdevSystem, database: PrivateServer, receiver: Receiver
) -> None:
    system.create_project(PROJECT)
    client = system.client()
    hook = register(client, receiver, PROJECT, "/hook", events=["command.completed"])
    # A key that was made but never used: not in any cache when the database goes.
    unused = call(client, "POST", "/api-keys", json={"name": "unused", "scopes": ["commands:read"]})
    assert unused.status_code == 201, unused.text
    unused_secret = unused.json()["data"]["secret"]
    # A run that prints through the whole outage, followed live from before it.
    ticks = int(OUTAGE_S) + 15
    long_run = submit(client, PROJECT, f"for i in $(seq 1 {ticks}); do echo tick $i; sleep 1; done")
    stream = Stream(system, long_run)
    stream.start()
    wait_for(
        lambda: call(client, "GET", f"/commands/{long_run}").json()["data"]["status"] == "running",
        60,
        "the long run did not start",
    )
    log_start = len(system.log_path.read_bytes())

    database.stop()
    submitted: list[str] = []
    answered = 0
    started = time.monotonic()
    while time.monotonic() - started < OUTAGE_S:
        cid = submit(client, PROJECT, f"echo during {len(submitted)}")
        submitted.append(cid)
        state = call(client, "GET", f"/commands/{cid}")
        assert state.status_code == 200, state.text
        output = call(client, "GET", f"/commands/{long_run}/output")
        assert output.status_code == 200 and output.text.startswith("tick 1\n"), output.text
        assert_unavailable(call(client, "GET", "/api-keys"))
        assert_unavailable(call(client, "GET", "/audit"))
        assert_unavailable(
            call(client, "POST", "/projects", json={"id": "newer", "workdir": str(system.data_dir)})
        )
        with httpx.Client(base_url=system.base_url, timeout=30) as stranger:
            assert_unavailable(
                call(stranger, "GET", "/projects", headers={"X-API-Key": unused_secret})
            )
        answered += 6
        time.sleep(1)
    database.start()

    # The stream followed the run to its end with every line, once.
    stream.join(timeout=300)
    assert stream.error is None, repr(stream.error)
    lines = [e.data["line"] for e in stream.events if e.event == "output"]
    assert lines == [f"tick {i}" for i in range(1, ticks + 1)]
    assert stream.events[-1].event == "complete"
    # Every command submitted during the outage ran.
    for n, cid in enumerate(submitted):
        _, events = read_events(client, events_url(PROJECT, cid), timeout=120)
        assert [e.data["line"] for e in events if e.event == "output"] == [f"during {n}"]
    # The database is back for what needs it, and audit and webhooks caught up by themselves.
    assert call(client, "GET", "/api-keys").status_code == 200
    everything = {*submitted, long_run}

    def audited() -> bool:
        rows = call(client, "GET", "/audit", params={"project": PROJECT, "limit": 1000})
        bodies = json.dumps(rows.json()["data"])
        return all(cid in bodies for cid in everything)

    wait_for(audited, 180, "the audit log lacks commands of the outage")

    def delivered() -> bool:
        with receiver.lock:
            bodies = " ".join(json.dumps(r.event) for r in receiver.received)
        return all(cid in bodies for cid in everything)

    wait_for(delivered, 180, "webhooks did not deliver the outage's completions")
    assert hook["id"]

    # One line when the database went away and one when it came back, per service that
    # uses it; no traceback.
    def said(text: str, service: str) -> int:
        log = system.log_path.read_bytes()[log_start:].decode(errors="replace")
        return sum(text in line and f"service={service}" in line for line in log.splitlines())

    for service in ("api", "webhooks", "audit"):
        wait_for(
            lambda s=service: said("database available again", s) == 1,
            120,
            f"{service} never said the database is back",
        )
        assert said("database unavailable", service) == 1, service
    log = system.log_path.read_bytes()[log_start:].decode(errors="replace")
    assert "Traceback" not in log and "Exception in ASGI" not in log
    assert answered > 6 * 10
    client.close()
