"""Shell completion of project ids and command ids, asked of the server (quickly:
a completion that hangs is worse than none)."""

from __future__ import annotations

from typing import Any

import httpx

COMPLETION_TIMEOUT_S = 2.0


def _get(path: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    from rdev_cli import config

    cfg = config.load()
    if not cfg.api_key:
        return []
    try:
        response = httpx.get(
            cfg.url + path,
            params=params,
            headers={"X-API-Key": cfg.api_key},
            timeout=COMPLETION_TIMEOUT_S,
        )
        return list(response.json()["data"]) if response.is_success else []
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return []


def projects(incomplete: str) -> list[str]:
    return sorted(p["id"] for p in _get("/projects") if str(p["id"]).startswith(incomplete))


def command_ids(incomplete: str) -> list[tuple[str, str]]:
    """Recent commands of every project this key sees, newest first, with their text."""
    found: list[dict[str, Any]] = []
    for project in projects(""):
        found.extend(_get(f"/projects/{project}/commands", {"limit": 20}))
    found.sort(key=lambda c: str(c.get("requested_at")), reverse=True)
    return [
        (str(c["id"]), str(c.get("command", ""))[:60])
        for c in found
        if str(c["id"]).startswith(incomplete)
    ]
