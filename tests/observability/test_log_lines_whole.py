"""Services sharing one output (as under `rdev up`) never mix their log lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

WRITER = """
import structlog
from rdev_common.logging import configure_logging
configure_logging("json", "info", service="writer")
log = structlog.get_logger()
for i in range(2000):
    log.info("line", i=i, padding="x" * 200)
"""


def test_lines_of_several_unbuffered_processes_stay_whole(tmp_path: Path) -> None:
    path = tmp_path / "shared.log"
    with path.open("ab") as shared:
        env = {"PYTHONUNBUFFERED": "1", "OTEL_SDK_DISABLED": "true"}
        writers = [
            subprocess.Popen([sys.executable, "-c", WRITER], stderr=shared, env=env)
            for _ in range(4)
        ]
        assert [w.wait(timeout=120) for w in writers] == [0] * 4
    lines = path.read_text().splitlines()
    assert len(lines) == 8000
    assert all(json.loads(line)["event"] == "line" for line in lines)
