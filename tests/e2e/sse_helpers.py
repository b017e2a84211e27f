"""A small, strict SSE reader for assertions (the user's own clients are tested separately)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class Event:
    id: str | None
    event: str
    data: dict[str, Any]


def read_events(
    client: httpx.Client,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    limit: int | None = None,
    timeout: float = 60,
    method: str = "GET",
    json_body: Any = None,
) -> tuple[int, list[Event]]:
    """Read events until the server closes the stream or `limit` events arrived."""
    events: list[Event] = []
    with client.stream(
        method, url, headers=headers or {}, json=json_body, timeout=timeout
    ) as response:
        if response.status_code != 200:
            response.read()
            return response.status_code, events
        fields: dict[str, str] = {}
        for line in response.iter_lines():
            if line == "":
                if "event" in fields or "data" in fields:
                    events.append(
                        Event(
                            fields.get("id"),
                            fields.get("event", "message"),
                            json.loads(fields.get("data", "null")),
                        )
                    )
                    if limit is not None and len(events) >= limit:
                        break
                fields = {}
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value
    return 200, events


def submit(client: httpx.Client, project: str, command: str, **extra: Any) -> str:
    response = client.post(f"/projects/{project}/shell", json={"command": command, **extra})
    assert response.status_code == 202, response.text
    body = response.json()["data"]
    assert body["status"] == "queued"
    return str(body["id"])


def events_url(project: str, command_id: str) -> str:
    return f"/projects/{project}/events?stream_id={command_id}"
