"""What `rdev up` tells the CLI about the system it runs: `up.json` in the data dir.

It holds the api's URL, the broker's URL and each service's health URL (no secret),
written once everything is started and removed when `rdev up` stops, so the
operator commands find the broker without RDEV_NATS_URL and `rdev status` can ask
every service how it is.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

STATE_FILE = "up.json"


def data_dir() -> Path:
    return Path(os.environ.get("RDEV_DATA_DIR", ".rdev"))


def state_path(base: Path | None = None) -> Path:
    return (base or data_dir()) / STATE_FILE


def write_state(base: Path, state: dict[str, Any]) -> Path:
    path = state_path(base)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def read_state(base: Path | None = None) -> dict[str, Any] | None:
    try:
        state = json.loads(state_path(base).read_text())
    except (OSError, ValueError):
        return None
    pid = state.get("pid")
    if isinstance(pid, int) and not _alive(pid):
        return None  # left behind by an `rdev up` that was killed
    return state if isinstance(state, dict) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def nats_url() -> str:
    """RDEV_NATS_URL, else the broker of the `rdev up` whose data dir this is."""
    if os.environ.get("RDEV_NATS_URL"):
        return os.environ["RDEV_NATS_URL"]
    state = read_state()
    if state and state.get("nats_url"):
        return str(state["nats_url"])
    raise SystemExit(
        f"rdev: no broker: RDEV_NATS_URL is not set and no `rdev up` runs with data dir "
        f"{data_dir().resolve()} (set RDEV_DATA_DIR to its data dir, or start one with `rdev up`)"
    )
