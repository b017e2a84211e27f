"""§2 and §7: every duration, sequence and time is bounded, numbers are strict and
event ids have one parser: a 422 naming the field, never a 500 or a silent default."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.sse_helpers import submit
from tests.hostile.support import rejects
from tests.support import RdevSystem

pytestmark = pytest.mark.e2e

UNKNOWN = "01939a4e-7b1c-7c3e-9d2a-0b5f4e6a7c8d"


def test_overflowing_durations_sequences_and_times(rdev: RdevSystem) -> None:
    rdev.create_project("bounds")
    with rdev.client() as c:
        key = c.post("/api-keys", json={"name": "k", "scopes": ["commands:read"]}).json()["data"]
        rejects(c.post(f"/api-keys/{key['id']}/rotate", json={"grace_s": 6.3e16}), "grace_s")
        hook = c.post(
            "/projects/bounds/webhooks",
            json={"url": "http://127.0.0.1:9/hook", "events": ["command.*"]},
        )
        assert hook.status_code == 201, hook.text
        hook_id = hook.json()["data"]["id"]
        for webhook_id in (hook_id, UNKNOWN):
            rejects(
                c.post(
                    f"/projects/bounds/webhooks/{webhook_id}/rotate-secret",
                    json={"overlap_s": 1e15},
                ),
                "overlap_s",
            )
        for since in ("99999999999999999999", "9999-12-31T23:59:59-14:00"):
            rejects(
                c.post(f"/projects/bounds/webhooks/{hook_id}/replay", params={"since": since}),
                "since",
            )
        rejects(c.get("/audit", params={"since": "9999-12-31T23:59:59-14:00"}), "since")
        rejects(c.get("/audit", params={"until": "0.5"}), "until")
        rejects(c.get("/audit/export", params={"until": "12"}), "until")
        rejects(
            c.post("/api-keys", json={"name": "k", "scopes": [], "expires_at": "0.5"}),
            "expires_at",
        )
        limits: dict[str, Any] = {"requests": {"limit": 10**30, "window_s": 60}}
        rejects(
            c.post("/api-keys", json={"name": "k", "scopes": [], "rate_limits": limits}),
            "rate_limits.requests.limit",
        )
        assert c.get("/audit", params={"since": "2026-01-01T00:00:00Z"}).status_code == 200


@pytest.mark.parametrize("timeout", [0, 0.5, -1, True, False, "5", 1e300])
def test_timeouts_are_strict_numbers_of_at_least_a_second(rdev: RdevSystem, timeout: Any) -> None:
    rdev.create_project("bounds")
    with rdev.client() as c:
        r = c.post("/projects/bounds/shell", json={"command": "true", "timeout_s": timeout})
        rejects(r, "timeout_s")
        rejects(
            c.patch("/projects/bounds", json={"default_timeout_s": timeout}), "default_timeout_s"
        )


def test_counts_are_strict_integers(rdev: RdevSystem) -> None:
    rdev.create_project("bounds")
    with rdev.client() as c:
        for value in (True, 1.5, "2", 0, 10**6):
            rejects(c.patch("/projects/bounds", json={"max_concurrency": value}), "max_concurrency")


@pytest.mark.parametrize("event_id", ["1--1", "+1", "1 1", "1-", "-1", "1-+2", "\u0661", "1" * 25])
def test_last_event_id_has_one_strict_parser(rdev: RdevSystem, event_id: str) -> None:
    rdev.create_project("bounds")
    with rdev.client() as c:
        cid = submit(c, "bounds", "true")
        for params in ({"stream_id": cid}, {}):
            r = c.get(
                "/projects/bounds/events",
                params=params,
                headers={"Last-Event-ID": event_id.encode()},  # type: ignore[dict-item]
            )
            rejects(r, "last-event-id")
