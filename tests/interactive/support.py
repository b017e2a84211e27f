"""Helpers of the interactive-run tests."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support import RdevSystem, wait_for


def submit(client: httpx.Client, project: str, command: str, **fields: Any) -> str:
    r = client.post(f"/projects/{project}/shell", json={"command": command, **fields})
    assert r.status_code == 202, r.text
    return str(r.json()["data"]["id"])


def state(system: RdevSystem, cid: str) -> dict[str, Any]:
    with system.client() as c:
        return dict(c.get(f"/commands/{cid}").json()["data"])


def completed(system: RdevSystem, cid: str, timeout: float = 120) -> dict[str, Any]:
    return dict(
        wait_for(
            lambda: (s := state(system, cid))["status"] == "completed" and s,
            timeout,
            f"{cid} did not complete",
        )
    )


def output(system: RdevSystem, cid: str) -> bytes:
    with system.client() as c:
        return c.get(f"/commands/{cid}/output").content
