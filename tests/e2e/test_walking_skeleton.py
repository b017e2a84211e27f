"""The whole system as `rdev up` starts it: submit a command, stream it, replay it, resume it."""

from __future__ import annotations

import stat

import httpx
import pytest

from tests.e2e.sse_helpers import events_url, read_events, submit
from tests.support import RdevSystem

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def project(rdev: RdevSystem) -> str:
    rdev.create_project("skeleton")
    return "skeleton"


def output_lines(events: list) -> list[tuple[str, str]]:
    return [(e.data["stream"], e.data["line"]) for e in events if e.event == "output"]


def test_health_and_readiness(rdev: RdevSystem) -> None:
    assert httpx.get(f"{rdev.base_url}/healthz").json() == {"data": {"status": "ok"}}
    ready = httpx.get(f"{rdev.base_url}/readyz").json()["data"]
    assert ready == {"status": "ready", "checks": {"nats": True, "database": True}}


def test_stream_a_command_live(rdev: RdevSystem, project: str) -> None:
    with rdev.client() as client:
        cid = submit(client, project, "echo out1; echo err1 >&2; sleep 0.2; echo out2; exit 3")
        status, events = read_events(client, events_url(project, cid))
    assert status == 200
    assert events[0].event == "connected"
    assert events[0].data["stream_id"] == cid
    assert sorted(output_lines(events)) == [
        ("stderr", "err1"),
        ("stdout", "out1"),
        ("stdout", "out2"),
    ]
    assert events[-1].event == "complete"
    assert events[-1].data["exit_code"] == 3
    assert events[-1].data["reason"] == "exited"
    assert all(e.id for e in events if e.event in ("output", "complete"))


def test_submit_asking_for_an_event_stream_gets_the_run_in_one_request(
    rdev: RdevSystem, project: str
) -> None:
    command = {"command": "echo out1; echo err1 >&2; exit 3"}
    stream = {"Accept": "text/event-stream", "Idempotency-Key": "one-request"}
    with rdev.client() as client:
        with client.stream("POST", f"/projects/{project}/shell", json=command, headers=stream) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            location = r.headers["location"]
        status, events = read_events(
            client, f"/projects/{project}/shell", method="POST", json_body=command, headers=stream
        )
        state = client.get(location).json()["data"]
        runs = client.get(f"/projects/{project}/commands").json()["data"]
    assert status == 200
    cid = location.rsplit("/", 1)[1]
    assert events[0].event == "connected" and events[0].data["stream_id"] == cid
    assert sorted(output_lines(events)) == [("stderr", "err1"), ("stdout", "out1")]
    assert events[-1].event == "complete" and events[-1].data["exit_code"] == 3
    # The same Idempotency-Key streamed the same run again; it ran once.
    assert state["status"] == "completed" and state["exit_code"] == 3
    assert [r["id"] for r in runs].count(cid) == 1


def test_a_stream_on_submit_needs_the_read_scope_and_then_runs_nothing(
    rdev: RdevSystem, project: str
) -> None:
    with rdev.client() as admin:
        r = admin.post("/api-keys", json={"name": "blind", "scopes": ["commands:execute"]})
        assert r.status_code == 201, r.text
        secret = r.json()["data"]["secret"]
        before = len(
            admin.get(f"/projects/{project}/commands", params={"limit": 100}).json()["data"]
        )
        with httpx.Client(base_url=rdev.base_url, headers={"X-API-Key": secret}) as blind:
            refused = blind.post(
                f"/projects/{project}/shell",
                json={"command": "true"},
                headers={"Accept": "text/event-stream"},
            )
            accepted = blind.post(f"/projects/{project}/shell", json={"command": "true"})
        after = len(
            admin.get(f"/projects/{project}/commands", params={"limit": 100}).json()["data"]
        )
    assert refused.status_code == 403, refused.text
    assert accepted.status_code == 202, accepted.text
    assert after == before + 1, "only the plain submit queued a command"


def test_finished_run_is_replayed_whole(rdev: RdevSystem, project: str) -> None:
    with rdev.client() as client:
        cid = submit(client, project, "seq 1 500")
        status, first = read_events(client, events_url(project, cid))
        status, again = read_events(client, events_url(project, cid))
    assert status == 200
    lines = [line for _, line in output_lines(again)]
    assert lines == [str(i) for i in range(1, 501)]
    assert [e.id for e in first] == [e.id for e in again][: len(first)]
    assert again[-1].event == "complete" and again[-1].data["exit_code"] == 0


def test_resume_with_last_event_id_has_no_gap_and_no_duplicate(
    rdev: RdevSystem, project: str
) -> None:
    total = 100_000
    with rdev.client() as client:
        cid = submit(client, project, f"seq 1 {total}")
        _, part = read_events(client, events_url(project, cid), limit=30_001)
        last = part[-1]
        assert last.event == "output"
        _, rest = read_events(
            client, events_url(project, cid), headers={"Last-Event-ID": last.id or ""}
        )
    seen = [e.data["line"] for e in part if e.event == "output"]
    seen += [e.data["line"] for e in rest if e.event == "output"]
    assert seen == [str(i) for i in range(1, total + 1)]
    assert rest[0].event == "connected"
    assert rest[-1].event == "complete"


def test_reconnect_after_complete_gets_204(rdev: RdevSystem, project: str) -> None:
    with rdev.client() as client:
        cid = submit(client, project, "true")
        _, events = read_events(client, events_url(project, cid))
        response = client.get(
            events_url(project, cid), headers={"Last-Event-ID": events[-1].id or ""}
        )
    assert events[-1].event == "complete"
    assert response.status_code == 204


def test_unknown_command_is_a_404_before_any_stream(rdev: RdevSystem, project: str) -> None:
    with rdev.client() as client:
        response = client.get(events_url(project, "01a21dca-0000-7000-8000-000000000000"))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_unknown_project_is_a_404(rdev: RdevSystem) -> None:
    with rdev.client() as client:
        response = client.post("/projects/nope/shell", json={"command": "true"})
    assert response.status_code == 404
    assert "nope" in response.json()["error"]["message"]


def test_requests_without_a_key_are_refused(rdev: RdevSystem, project: str) -> None:
    response = httpx.post(f"{rdev.base_url}/projects/{project}/shell", json={"command": "true"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"
    response = httpx.get(f"{rdev.base_url}/projects", headers={"X-API-Key": "rdev_wrong"})
    assert response.status_code == 401


def test_bearer_token_works_like_x_api_key(rdev: RdevSystem) -> None:
    response = httpx.get(
        f"{rdev.base_url}/projects", headers={"Authorization": f"Bearer {rdev.api_key}"}
    )
    assert response.status_code == 200


def test_cookie_session_authenticates_sse(rdev: RdevSystem, project: str) -> None:
    # A browser sends its page's Origin with every state change; the api requires it there.
    same_origin = {"Origin": rdev.base_url}
    with httpx.Client(base_url=rdev.base_url, timeout=30, headers=same_origin) as browser:
        login = browser.post("/session", json={"api_key": rdev.api_key})
        assert login.status_code == 200
        cookie = login.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        cid = submit(browser, project, "echo via-cookie")
        _, events = read_events(browser, events_url(project, cid))
        assert ("stdout", "via-cookie") in output_lines(events)
        assert browser.delete("/session").status_code == 204
        assert browser.get("/projects").status_code == 401


def test_bad_input_names_the_field(rdev: RdevSystem, project: str) -> None:
    with rdev.client() as client:
        missing = client.post(f"/projects/{project}/shell", json={})
        nul = client.post(f"/projects/{project}/shell", json={"command": "echo \x00"})
        prio = client.post(
            f"/projects/{project}/shell", json={"command": "true", "priority": "urgent"}
        )
        workdir = client.post("/projects", json={"id": "bad-dir", "workdir": "not/absolute"})
        slug = client.post("/projects", json={"id": "Bad Id!", "workdir": "/tmp"})
    assert missing.status_code == 422 and "command" in missing.json()["error"]["message"]
    assert nul.status_code == 422 and nul.json()["error"]["details"]["field"] == "command"
    assert prio.status_code == 422 and "priority" in prio.json()["error"]["message"]
    assert workdir.status_code == 422 and workdir.json()["error"]["details"]["field"] == "workdir"
    assert slug.status_code == 422 and slug.json()["error"]["details"]["field"] == "id"


def test_generated_admin_key_is_saved_with_mode_0600(tmp_path) -> None:
    from tests.support import RdevSystem, free_port, system_env

    port = free_port()
    env = system_env(tmp_path, port, "unused")
    del env["RDEV_BOOTSTRAP_KEY"]
    system = RdevSystem(tmp_path, port, "", env)
    system.start()
    try:
        key_file = tmp_path / "admin.key"
        secret = key_file.read_text().strip()
        assert secret.startswith("rdev_")
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert secret in system.log_path.read_text()
        ok = httpx.get(f"{system.base_url}/projects", headers={"X-API-Key": secret})
        assert ok.status_code == 200
    finally:
        system.stop()
