"""§1: an id from a request never becomes a NATS subject pattern or a second token.

Malformed ids are a 422 naming the parameter, well-formed unknown ones a 404, and
the subject builders refuse an unsafe token whatever route forgot to check it.
"""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from rdev_common import subjects
from rdev_common.errors import ValidationFailed
from tests.e2e.sse_helpers import submit
from tests.hostile.support import problem, rejects
from tests.support import RdevSystem

BAD_IDS = ["a%20b", "a%09b", "a%0Ab", "%2A", "%3E", "a.b", "a%00b", "%E2%80%A8x"]
UNKNOWN = "01939a4e-7b1c-7c3e-9d2a-0b5f4e6a7c8d"


@pytest.mark.e2e
@pytest.mark.parametrize("bad", BAD_IDS)
def test_a_malformed_command_id_is_a_422_on_every_route(rdev: RdevSystem, bad: str) -> None:
    rdev.create_project("ids")
    with rdev.client() as c:
        submit(c, "ids", "true")  # a newest command a wildcard would have found
        for response in (
            c.get(f"/commands/{bad}"),
            c.get(f"/commands/{bad}/output", params={"follow": "true"}, timeout=10),
            c.post(f"/commands/{bad}/cancel"),
            c.post(f"/commands/{bad}/rerun"),
            c.get("/projects/ids/events", params={"stream_id": unquote(bad)}),
        ):
            field = "stream_id" if "events" in str(response.url) else "command_id"
            error = rejects(response, field)
            assert "valid" in error["message"] or "must be" in error["message"], error
        rejects(c.get("/projects/ids/events", params={"stream_id": "x y"}), "stream_id")
        rejects(c.get("/projects/ids/events", params={"stream_id": ">"}), "stream_id")


@pytest.mark.e2e
def test_a_well_formed_unknown_id_is_a_404(rdev: RdevSystem) -> None:
    rdev.create_project("ids")
    with rdev.client() as c:
        for response in (
            c.get(f"/commands/{UNKNOWN}"),
            c.get(f"/commands/{UNKNOWN}/output"),
            c.post(f"/commands/{UNKNOWN}/cancel"),
            c.get("/projects/ids/events", params={"stream_id": UNKNOWN}),
            c.get(f"/api-keys/{UNKNOWN}"),
            c.get(f"/projects/ids/webhooks/{UNKNOWN}"),
        ):
            problem(response, 404)


@pytest.mark.e2e
def test_other_ids_in_paths_are_checked_too(rdev: RdevSystem) -> None:
    rdev.create_project("ids")
    with rdev.client() as c:
        rejects(c.get("/projects/%2A"), "project_id")
        rejects(c.get("/projects/a.b/commands"), "project_id")
        rejects(c.get("/api-keys/%3E"), "key_id")
        rejects(c.get("/projects/ids/webhooks/a%20b"), "webhook_id")
        rejects(c.get(f"/projects/ids/webhooks/{UNKNOWN}/deliveries/a*b"), "delivery_id")


@pytest.mark.parametrize("bad", ["", "a.b", "*", ">", "a b", "a\tb", "a\nb", "a\x00b", "\x7f"])
def test_subject_builders_refuse_unsafe_tokens(bad: str) -> None:
    for build in (
        lambda: subjects.run_event("p", bad, "completed"),
        lambda: subjects.run_event(bad, "c", "completed"),
        lambda: subjects.run_events("p", bad),
        lambda: subjects.project_run_events(bad),
        lambda: subjects.command("normal", "p", bad),
        lambda: subjects.command_any_priority(None, bad),
        lambda: subjects.project_commands(bad),
        lambda: subjects.webhook(bad, "x"),
        lambda: subjects.rate_limit(bad, "requests", 1),
    ):
        with pytest.raises(ValidationFailed):
            build()


def test_subject_builders_keep_their_wildcards_explicit() -> None:
    assert subjects.project_runs_of_kind("p", "completed") == "rdev.runs.p.*.completed"
    assert subjects.command_any_priority(None, "c1") == "rdev.commands.*.*.c1"
    assert subjects.run_event("p", "c-1_x", "output") == "rdev.runs.p.c-1_x.output"
