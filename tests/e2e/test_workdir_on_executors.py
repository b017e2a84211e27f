"""A project's workdir is the executors' to check: they own the workspaces, and the api
may run where it cannot see them (docker-compose mounts the workspaces volume on the
executor only). Registering a path the api cannot see works; a run in a workdir its
executor does not have ends with reason `error` and says why."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.sse_helpers import events_url, read_events, submit
from tests.support import RdevSystem

pytestmark = pytest.mark.e2e


def test_a_workdir_only_the_executors_have_can_be_registered(rdev: RdevSystem) -> None:
    missing = f"/nonexistent-{uuid.uuid4().hex[:8]}/project"
    with rdev.client() as client:
        r = client.post("/projects", json={"id": "elsewhere", "workdir": missing})
        assert r.status_code == 201, r.text
        assert r.json()["data"]["workdir"] == missing
        command_id = submit(client, "elsewhere", "echo never")
        status, events = read_events(client, events_url("elsewhere", command_id), timeout=120)
        state = client.get(f"/commands/{command_id}").json()["data"]
    assert status == 200
    assert not [e for e in events if e.event == "output"]
    assert (state["reason"], state["exit_code"]) == ("error", 255), state
    assert "does not exist" in state["error"] and missing in state["error"], state


def test_a_relative_workdir_is_refused(rdev: RdevSystem) -> None:
    with rdev.client() as client:
        r = client.post("/projects", json={"id": "relative", "workdir": "some/dir"})
    assert r.status_code == 422
    assert r.json()["error"]["details"]["field"] == "workdir"
