"""The documented contract: the plain nats-py example subscriber receives what docs/events.md
says it will, the AsyncAPI document is current, and the running system audits a real run."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from queue import Empty, Queue

import pytest

from rdev_common.asyncapi import document
from tests.e2e.sse_helpers import submit
from tests.support import ROOT, RdevSystem, wait_for

EXAMPLE = ROOT / "docs" / "examples" / "subscriber.py"


def nats_url_of(system: RdevSystem) -> str:
    found = re.search(r"JetStream at (nats://\S+)", system.log_path.read_text(errors="replace"))
    assert found, "rdev up did not print its broker URL"
    return found.group(1)


class LineReader:
    """A subprocess's stdout lines, read on a thread so waits can be bounded."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: Queue[str] = Queue()
        assert proc.stdout is not None
        stdout = proc.stdout
        threading.Thread(target=lambda: [self.lines.put(x) for x in stdout], daemon=True).start()

    def until(self, predicate, timeout: float, what: str) -> list[str]:
        seen: list[str] = []
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5).rstrip("\n")
            except Empty:
                continue
            seen.append(line)
            if predicate(seen):
                return seen
        raise AssertionError(f"timed out waiting for {what}; saw {seen}")


@pytest.fixture
def subscriber(rdev: RdevSystem) -> Iterator[LineReader]:
    rdev.create_project("docs-sub")
    login = rdev.broker_login("observer")  # docs/events.md: internal subscribers read as it
    env = {
        **rdev.env,
        "RDEV_NATS_URL": nats_url_of(rdev),
        "RDEV_NATS_USER": login["user"],
        "RDEV_NATS_PASSWORD": login["password"],
    }
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "--project", "docs-sub"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    reader = LineReader(proc)
    try:
        reader.until(lambda seen: "ready" in seen, 120, "the subscriber to be ready")
        yield reader
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.e2e
def test_example_subscriber_receives_the_documented_lifecycle(
    rdev: RdevSystem, subscriber: LineReader
) -> None:
    with rdev.client() as client:
        cid = submit(client, "docs-sub", "echo documented; exit 3")

    def completed(seen: list[str]) -> bool:
        return any(line.startswith("dev.rdev.command.completed.v1 " + cid) for line in seen)

    lines = subscriber.until(completed, 120, f"command.completed of {cid}")
    events = {}
    for line in lines:
        if f" {cid} " in line:
            event_type, _, data = line.split(" ", 2)
            events[event_type] = json.loads(data)
    assert list(events) == [
        "dev.rdev.command.requested.v1",
        "dev.rdev.command.started.v1",
        "dev.rdev.command.completed.v1",
    ]
    assert events["dev.rdev.command.requested.v1"]["command"] == "echo documented; exit 3"
    done = events["dev.rdev.command.completed.v1"]
    assert (done["exit_code"], done["reason"]) == (3, "exited")
    assert isinstance(done["duration_ms"], int)


@pytest.mark.e2e
def test_the_running_system_audits_a_run(rdev: RdevSystem) -> None:
    rdev.create_project("audited")
    with rdev.client() as client:
        cid = submit(client, "audited", "true")

        def rows() -> list[dict]:
            data = client.get("/audit", params={"project": "audited", "limit": 50}).json()["data"]
            mine = [r for r in data if r["target"] == cid]
            return mine if len(mine) == 3 else []

        found = wait_for(rows, 120, f"three audit rows for {cid}", interval=0.5)
        assert [r["action"] for r in reversed(found)] == [
            "command.requested",
            "command.started",
            "command.completed",
        ]
        assert {r["outcome"] for r in found} == {"success"}
        assert all(r["actor"] == found[-1]["actor"] and r["actor"] for r in found)
        assert client.get("/audit/verify").json()["data"]["ok"] is True


def test_asyncapi_document_is_generated_from_the_models() -> None:
    committed = json.loads((ROOT / "docs" / "asyncapi.json").read_text())
    assert committed == json.loads(json.dumps(document())), (
        "docs/asyncapi.json is stale: python -m rdev_common.asyncapi > docs/asyncapi.json"
    )
    types = {m["name"] for m in committed["components"]["messages"].values()}
    assert {"dev.rdev.command.completed.v1", "dev.rdev.webhook.disabled.v1"} <= types
    documented = (ROOT / "docs" / "events.md").read_text()
    missing = sorted(t for t in types if t not in documented)
    assert not missing, f"docs/events.md does not mention {missing}"
