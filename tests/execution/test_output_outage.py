"""A broker outage across a command's exit loses no output, and says so if it must.

The broker is a real nats-server, killed with SIGKILL and started again on the same
port and store while the command runs and exits. Every line must then arrive
exactly once and in order through `/output`, an SSE replay and a follower that
was live through the outage; `complete` counts exactly the lines stored.
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

from rdev_common.broker import EmbeddedNats
from tests.e2e.sse_helpers import Event, events_url, read_events, submit
from tests.support import RdevSystem, start_system, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PROJECT = "outage"
# Small enough that the output of an outage goes through the spool, and that the
# last test fills it; the first tests' output (≈1.3 MB) fits.
BUFFER_BYTES = 64 * 1024
SPOOL_BYTES = 3 * 1024 * 1024


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory, broker: EmbeddedNats) -> Iterator[RdevSystem]:
    yield from start_system(
        tmp_path_factory.mktemp("outage-system"),
        RDEV_NATS_URL=broker.url,
        RDEV_EXECUTOR_ACK_WAIT_S="60",
        RDEV_OUTPUT_BUFFER_BYTES=str(BUFFER_BYTES),
        RDEV_OUTPUT_SPOOL_BYTES=str(SPOOL_BYTES),
        RDEV_HEARTBEAT_S="1",
    )


class Follower(threading.Thread):
    """A live SSE client that, like EventSource, reconnects with Last-Event-ID."""

    def __init__(self, system: RdevSystem, command_id: str) -> None:
        super().__init__(daemon=True)
        self.system, self.command_id = system, command_id
        self.events: list[Event] = []
        self.last_id: str | None = None
        self.reconnects = 0
        self.done = threading.Event()

    def lines(self) -> int:
        return sum(1 for e in self.events if e.event == "output")

    def run(self) -> None:
        while not self.done.is_set():
            headers = {"Last-Event-ID": self.last_id} if self.last_id else {}
            try:
                with self.system.client() as c:
                    self._read(c, headers)
            except httpx.HTTPError:
                pass
            if not self.done.is_set():
                self.reconnects += 1
                time.sleep(0.5)

    def _read(self, client: httpx.Client, headers: dict[str, str]) -> None:
        url = events_url(PROJECT, self.command_id)
        with client.stream("GET", url, headers=headers, timeout=60) as response:
            fields: dict[str, str] = {}
            for line in response.iter_lines():
                if line:
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")
                    continue
                if "event" in fields:
                    event = Event(fields.get("id"), fields["event"], json.loads(fields["data"]))
                    if event.id:
                        self.last_id = event.id
                    if event.event != "connected":
                        self.events.append(event)
                    if event.event == "complete":
                        self.done.set()
                        return
                fields = {}


def status(system: RdevSystem, cid: str) -> str:
    with system.client() as c:
        return str(c.get(f"/commands/{cid}").json()["data"]["status"])


def outage_across_exit(
    system: RdevSystem, broker: EmbeddedNats, command: str, kill_at: int, outage_s: float
) -> tuple[str, Follower]:
    """Submit `command`, follow it live, SIGKILL the broker once the follower has
    `kill_at` lines, start it again `outage_s` later; returns once the run completed."""
    with system.client() as client:
        cid = submit(client, PROJECT, command)
    follower = Follower(system, cid)
    follower.start()
    wait_for(lambda: status(system, cid) == "running", 30, "the command did not start")
    wait_for(lambda: follower.lines() >= kill_at, 60, f"no {kill_at} lines before the kill")
    broker.stop(kill=True)
    time.sleep(outage_s)  # the outage itself
    broker.start()
    assert follower.join(timeout=180) is None and follower.done.is_set(), "follower never ended"
    return cid, follower


def assert_every_line_once(system: RdevSystem, cid: str, follower: Follower, total: int) -> None:
    expected = [str(i) for i in range(1, total + 1)]
    with system.client() as client:
        output = client.get(f"/commands/{cid}/output", timeout=120)
        _, replay = read_events(client, events_url(PROJECT, cid), timeout=120)
    assert output.status_code == 200
    assert output.text.split("\n")[:-1] == expected, "/output"
    for name, events in (("replay", replay), ("live", follower.events)):
        out = [e.data for e in events if e.event == "output"]
        assert [d["line"] for d in out] == expected, name
        assert [d["n"] for d in out] == list(range(1, total + 1)), name
        assert not any(d.get("partial") for d in out), name
        done = [e.data for e in events if e.event == "complete"]
        assert len(done) == 1, name
        assert (done[0]["exit_code"], done[0]["reason"]) == (0, "exited"), name
        assert (done[0]["lines"], done[0]["truncated"]) == (total, False), name
        assert "error" not in [e.event for e in events], name


@pytest.fixture(scope="module", autouse=True)
def project(system: RdevSystem) -> Path:
    return system.create_project(PROJECT)


def test_an_outage_spanning_the_exit_loses_no_line(
    system: RdevSystem, broker: EmbeddedNats
) -> None:
    """The issue's repro: 200,000 lines in blocks of 1,000 with 30 ms pauses; the
    broker is killed at ≈20,000 and comes back ≈13 s later, long after the exit."""
    command = "for b in $(seq 0 199); do seq $((b*1000+1)) $((b*1000+1000)); sleep 0.03; done"
    cid, follower = outage_across_exit(system, broker, command, 20_000, 13.0)
    assert_every_line_once(system, cid, follower, 200_000)


def test_an_outage_from_before_the_first_line_loses_none_and_cuts_none(
    system: RdevSystem, broker: EmbeddedNats
) -> None:
    """The issue's 12 s variant: every line is written while the broker is away."""
    command = (
        "sleep 1; for b in $(seq 0 99); do seq $((b*1000+1)) $((b*1000+1000)); sleep 0.02; done"
    )
    cid, follower = outage_across_exit(system, broker, command, 0, 12.0)
    assert_every_line_once(system, cid, follower, 100_000)


def test_output_past_the_spool_is_dropped_and_the_run_says_so(
    system: RdevSystem, broker: EmbeddedNats
) -> None:
    # ≈6.9 MB, written while the broker is away: more than memory and spool hold.
    command = "sleep 1; seq 1 1000000"
    cid, follower = outage_across_exit(system, broker, command, 0, 8.0)
    with system.client() as client:
        output = client.get(f"/commands/{cid}/output", timeout=120)
        _, replay = read_events(client, events_url(PROJECT, cid), timeout=120)
    for name, events in (("replay", replay), ("live", follower.events)):
        out = [e.data for e in events if e.event == "output"]
        stored = len(out)
        assert 0 < stored < 1_000_000, name
        # What is stored is a prefix, each line whole, once, in order.
        assert [d["line"] for d in out] == [str(i) for i in range(1, stored + 1)], name
        assert not any(d.get("partial") for d in out), name
        kinds = [e.event for e in events]
        assert kinds[-2:] == ["error", "complete"], name
        error: dict[str, Any] = events[-2].data
        assert error["code"] == "output_dropped" and "dropped" in error["message"], name
        done = events[-1].data
        assert (done["exit_code"], done["reason"]) == (0, "exited"), name
        assert done["truncated"] is True and done["lines"] == stored, name
        assert done["output_dropped_bytes"] > 0, name
    assert output.text.split("\n")[:-1] == [str(i) for i in range(1, stored + 1)]
