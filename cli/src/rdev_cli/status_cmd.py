"""`rdev status`: every service's health and where the broker is."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import typer

from rdev_cli import config, local, output

HEALTH_TIMEOUT_S = 3.0


def _health(url: str) -> tuple[str, str]:
    """(ready|not ready|unreachable, detail) of one /readyz."""
    try:
        response = httpx.get(url, timeout=HEALTH_TIMEOUT_S)
    except httpx.HTTPError as exc:
        return "unreachable", type(exc).__name__
    if response.status_code == 200:
        return "ready", ""
    try:
        detail = ", ".join(f"{k}: {v}" for k, v in dict(response.json()).items())
    except (ValueError, TypeError):
        detail = response.text.strip()[:120]
    return "not ready", detail


def status(as_json: Annotated[bool, output.JsonOption] = False) -> None:
    """Every service's health, the api's URL and the broker's URL.

    Reads what `rdev up` wrote in the data dir (RDEV_DATA_DIR, default .rdev); without
    one, asks the api at RDEV_URL. Exits 1 if any service is not ready.
    """
    state = local.read_state()
    if state is None:
        url = config.load().url
        state = {"url": url, "nats_url": None, "health": {"api": f"{url}/readyz"}}
    rows: list[dict[str, Any]] = []
    for name, url in dict(state.get("health") or {}).items():
        health, detail = _health(str(url))
        rows.append({"service": name, "health": health, "detail": detail, "url": url})
    summary = {
        "url": state.get("url"),
        "nats_url": state.get("nats_url") or "unknown (not started by `rdev up` here)",
        "services": rows,
    }
    if as_json:
        output.emit_json(summary)
    else:
        typer.echo(f"api      {summary['url']}")
        typer.echo(f"broker   {summary['nats_url']}")
        typer.echo("")
        colours = {"ready": "green", "not ready": "red", "unreachable": "red"}
        output.table(
            rows,
            [
                ("SERVICE", output.field("service")),
                ("HEALTH", lambda r: output.Styled(r["health"], colours[r["health"]])),
                ("DETAIL", output.field("detail")),
                ("HEALTH URL", output.field("url")),
            ],
            False,
        )
    if any(r["health"] != "ready" for r in rows):
        raise typer.Exit(1)
