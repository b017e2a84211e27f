"""Helpers for driving webhooks through the whole system."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

from tests.support import RdevSystem, wait_for
from tests.webhooks.receiver import Receiver


def register(
    client: httpx.Client,
    receiver: Receiver,
    project: str,
    path: str,
    events: list[str] | None = None,
) -> dict[str, Any]:
    r = client.post(
        f"/projects/{project}/webhooks",
        json={"url": receiver.url(path), "events": events or ["command.*"]},
    )
    assert r.status_code == 201, r.text
    hook: dict[str, Any] = r.json()["data"]
    assert hook["secret"].startswith("whsec_")
    endpoint = receiver.endpoints.get(path) or receiver.endpoint(path)
    endpoint.secrets = [hook["secret"]]
    return hook


def deliveries(client: httpx.Client, project: str, webhook_id: str) -> list[dict[str, Any]]:
    """Every delivery of a webhook, following the cursor."""
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 100}
        if cursor:
            params["cursor"] = cursor
        r = client.get(f"/projects/{project}/webhooks/{webhook_id}/deliveries", params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        found += body["data"]
        cursor = body["next_cursor"]
        if not cursor:
            return found


def delivery(client: httpx.Client, project: str, webhook_id: str, delivery_id: str) -> Any:
    r = client.get(f"/projects/{project}/webhooks/{webhook_id}/deliveries/{delivery_id}")
    assert r.status_code == 200, r.text
    return r.json()["data"]


def wait_all_succeeded(
    client: httpx.Client, project: str, webhook_id: str, count: int, timeout: float = 180
) -> list[dict[str, Any]]:
    def done() -> list[dict[str, Any]] | None:
        found = deliveries(client, project, webhook_id)
        ok = [d for d in found if d["status"] == "succeeded"]
        return found if len(ok) >= count else None

    result: list[dict[str, Any]] = wait_for(
        done, timeout, f"{count} deliveries of {webhook_id} did not all succeed", interval=0.2
    )
    return result


def child_pid(system: RdevSystem, module: str) -> int | None:
    """The pid of a service `rdev up` supervises, found through /proc."""
    assert system.process is not None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == system.process.pid and f"-m {module}" in cmdline:
            return int(entry.name)
    return None


def nats_url(system: RdevSystem) -> str:
    found = re.search(r"JetStream at (nats://\S+)", system.log_path.read_text(errors="replace"))
    assert found, "rdev up did not print its nats-server URL"
    return found.group(1)
