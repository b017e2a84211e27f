"""Running the real `rdev` executable against the system the session started."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from tests.support import BIN

PROJECT = "cli"
RUN_TIMEOUT_S = 120


def rdev_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "rdev"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
