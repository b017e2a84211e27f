"""A run's stdin fed through the api, over the broker, into a real command."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.interactive.conftest import INPUT_MAX_BYTES
from tests.interactive.support import completed, output, state, submit
from tests.support import RdevSystem, service_pids, wait_for

pytestmark = [pytest.mark.e2e]


@pytest.fixture(scope="module")
def project(system: RdevSystem) -> str:
    system.create_project("stdin")
    return "stdin"


def test_python_input_fed_through_the_api(system: RdevSystem, project: str) -> None:
    with system.client() as client:
        cid = submit(
            client,
            project,
            "python3 -c 'a = input(); b = input(); print(a.upper(), b[::-1])'",
            stdin=True,
        )
        r = client.put(f"/commands/{cid}/stdin", content=b"hello\nworld\n")
        assert r.status_code == 200, r.text
        assert r.json()["data"] == {"bytes": 12, "closed": True}
    done = completed(system, cid)
    assert done["exit_code"] == 0, done
    assert done["stdin"] is True
    assert output(system, cid) == b"HELLO dlrow\n"


def test_eof_closes_stdin_and_a_chunked_body_arrives_whole(
    system: RdevSystem, project: str
) -> None:
    """3 MiB of random bytes streamed in chunks reach `sha256sum` complete and in order,
    and the end of the body is its EOF (without it sha256sum would wait for its timeout)."""
    blob = os.urandom(3 * 1024 * 1024)

    def body() -> Iterator[bytes]:
        for i in range(0, len(blob), 100_000):
            yield blob[i : i + 100_000]

    with system.client() as client:
        # The command starts reading late: input waits in the pipe and in the api.
        cid = submit(client, project, "sleep 1; sha256sum", stdin=True, timeout_s=120)
        r = client.put(f"/commands/{cid}/stdin", content=body(), timeout=120)
        assert r.status_code == 200, r.text
        assert r.json()["data"] == {"bytes": len(blob), "closed": True}
    done = completed(system, cid)
    assert done["exit_code"] == 0, done
    assert output(system, cid).split()[0].decode() == hashlib.sha256(blob).hexdigest()


def test_input_sent_while_queued_waits_for_the_run(system: RdevSystem) -> None:
    """A project of one slot: the second run is queued behind a sleep when its input is
    sent; the request waits, and the input reaches the command once it starts."""
    with system.client() as client:
        system.create_project("queued-in")
        r = client.patch("/projects/queued-in", json={"max_concurrency": 1})
        assert r.status_code == 200, r.text
        blocker = submit(client, "queued-in", "sleep 60")
        wait_for(lambda: state(system, blocker)["status"] == "running", 60, "blocker not running")
        cid = submit(client, "queued-in", "cat", stdin=True)
        result: dict[str, httpx.Response] = {}

        def send() -> None:
            with system.client() as c:
                result["r"] = c.put(f"/commands/{cid}/stdin", content=b"queued line\n", timeout=120)

        sender = threading.Thread(target=send)
        sender.start()
        assert state(system, cid)["status"] == "queued"
        assert "r" not in result  # still waiting for the run
        assert client.post(f"/commands/{blocker}/cancel").status_code == 202
        sender.join(120)
    assert result["r"].status_code == 200, result["r"].text
    done = completed(system, cid)
    assert done["exit_code"] == 0, done
    assert output(system, cid) == b"queued line\n"


def test_a_run_without_stdin_takes_no_input(system: RdevSystem, project: str) -> None:
    with system.client() as client:
        cid = submit(client, project, "sleep 30")
        r = client.put(f"/commands/{cid}/stdin", content=b"x")
        assert r.status_code == 409, r.text
        assert r.json()["error"]["details"]["field"] == "stdin"
        client.post(f"/commands/{cid}/cancel")


def test_input_after_the_run_ended_is_a_conflict(system: RdevSystem, project: str) -> None:
    with system.client() as client:
        cid = submit(client, project, "true", stdin=True)
        completed(system, cid)
        r = client.put(f"/commands/{cid}/stdin", content=b"late\n")
    assert r.status_code == 409, r.text


def test_input_is_bounded_per_run(system: RdevSystem, project: str) -> None:
    with system.client() as client:
        cid = submit(client, project, "cat > /dev/null", stdin=True)
        r = client.put(f"/commands/{cid}/stdin", content=b"x" * (INPUT_MAX_BYTES + 1), timeout=120)
        assert r.status_code == 413, r.text
        assert str(INPUT_MAX_BYTES) in r.json()["error"]["message"]
        # What fitted was written; the run goes on and ends with its stdin closed.
        r = client.put(f"/commands/{cid}/stdin", content=b"")
        assert r.status_code == 200, r.text
    assert completed(system, cid)["exit_code"] == 0


def test_executor_killed_during_an_interactive_run_ends_it_lost(
    system: RdevSystem, project: str
) -> None:
    with system.client() as client:
        cid = submit(client, project, "cat", stdin=True, timeout_s=300)
        r = client.put(f"/commands/{cid}/stdin", params={"close": "false"}, content=b"first\n")
        assert r.status_code == 200, r.text
        assert r.json()["data"] == {"bytes": 6, "closed": False}
        wait_for(lambda: output(system, cid) == b"first\n", 60, "the input was not echoed")
        (executor,) = service_pids(system, "executor")
        os.kill(executor, signal.SIGKILL)
        done = completed(system, cid, timeout=180)
        assert done["reason"] == "lost", done
        # Nothing takes input for the run any more.
        r = client.put(f"/commands/{cid}/stdin", content=b"second\n")
    assert r.status_code == 409, r.text


def test_a_key_of_another_project_cannot_send_input(system: RdevSystem, project: str) -> None:
    system.create_project("stdin-other")
    with system.client() as admin:
        cid = submit(admin, project, "cat", stdin=True)
        r = admin.post(
            "/api-keys",
            json={
                "name": "other-project",
                "scopes": ["commands:execute", "commands:read"],
                "projects": ["stdin-other"],
            },
        )
        assert r.status_code == 201, r.text
        secret = r.json()["data"]["secret"]
        # A key of the run's own project without commands:execute cannot send either.
        r = admin.post(
            "/api-keys",
            json={"name": "reader", "scopes": ["commands:read"], "projects": [project]},
        )
        reader = r.json()["data"]["secret"]
    with httpx.Client(base_url=system.base_url, headers={"X-API-Key": secret}) as other:
        assert other.put(f"/commands/{cid}/stdin", content=b"intruder\n").status_code == 404
        r = other.post(f"/commands/{cid}/signal", json={"signal": "KILL"})
        assert r.status_code == 404
    with httpx.Client(base_url=system.base_url, headers={"X-API-Key": reader}) as read_only:
        assert read_only.put(f"/commands/{cid}/stdin", content=b"reader\n").status_code == 403
    with system.client() as admin:
        assert admin.put(f"/commands/{cid}/stdin", content=b"owner\n").status_code == 200
    assert completed(system, cid)["exit_code"] == 0
    assert output(system, cid) == b"owner\n"
