"""The Python examples of SSE_CLIENTS.md (sseclient-py + requests, aiohttp), run as written."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests
import sseclient

from tests.clients.support import (
    COMMAND,
    LONG_LINES,
    RELEASE_AFTER,
    ClientOutput,
    Scenario,
    Target,
    assert_complete_output,
    assert_long_line,
    example,
    long_line_command,
    run_client,
    tool_env,
)
from tests.e2e.sse_helpers import submit
from tests.support import RdevSystem

pytestmark = pytest.mark.e2e

# aiohttp's example returns the `complete` data and prints nothing after it: run the
# module whole, then report the exit code it returned in its `result` variable.
SHOW_RESULT = (
    "import runpy, sys\n"
    "result = runpy.run_path(sys.argv[1], run_name='__main__')['result']\n"
    "print(f\"Exit code: {result['exit_code']}\")\n"
)


def test_sseclient_py_example(target: Target, scenario: Scenario, tmp_path: Path) -> None:
    code = replace(target, command=scenario.command).apply(
        example("python_sseclient.py"), "'pip install -r requirements.txt'", repr
    )
    script = tmp_path / "python_sseclient.py"
    script.write_text(code)
    printed = run_client(
        [sys.executable, str(script)],
        env=tool_env(PYTHONUNBUFFERED="1"),
        scenario=scenario,
        artifact=f"python_sseclient-{scenario.name}.log",
    )
    out = ClientOutput.parse(printed)
    assert any(line.startswith("Connected: ") for line in out.other), out.other
    assert_complete_output(out.stdout, out.stderr, out.exit_code("Exit code: "))


def run_aiohttp_example(target: Target, scenario: Scenario, tmp_path: Path) -> ClientOutput:
    code = replace(target, command=scenario.command).apply(
        example("python_aiohttp.py"), "'make build'", repr
    )
    script = tmp_path / "python_aiohttp.py"
    script.write_text(code)
    printed = run_client(
        [sys.executable, "-c", SHOW_RESULT, str(script)],
        env=tool_env(PYTHONUNBUFFERED="1"),
        scenario=scenario,
        artifact=f"python_aiohttp-{scenario.name}.log",
    )
    return ClientOutput.parse(printed)


def test_aiohttp_example(target: Target, scenario: Scenario, tmp_path: Path) -> None:
    out = run_aiohttp_example(target, scenario, tmp_path)
    assert_complete_output(out.stdout, out.stderr, out.exit_code("Exit code: "))


@pytest.mark.parametrize("kind", sorted(LONG_LINES))
def test_aiohttp_example_with_the_longest_lines(target: Target, kind: str, tmp_path: Path) -> None:
    """aiohttp reads lines of up to 128 KiB: rdev's widest `data:` lines must fit."""
    out = run_aiohttp_example(target, Scenario(f"long-{kind}", long_line_command(kind)), tmp_path)
    assert_long_line(out, kind)
    assert out.exit_code("Exit code: ") == 0


def test_python_reconnect_example_resumes_mid_run(rdev: RdevSystem, target: Target) -> None:
    """`connect_with_reconnect` (Reconnection Handling) picks up after the last event read."""
    # The snippet relies on the imports of the sseclient-py example above it.
    namespace: dict[str, Any] = {"requests": requests, "sseclient": sseclient}
    exec(example("python_reconnect.py"), namespace)
    connect_with_reconnect = namespace["connect_with_reconnect"]
    with rdev.client() as client:
        stream_id = submit(client, target.project, COMMAND)
    url = f"{target.base_url}/projects/{target.project}/events?stream_id={stream_id}"

    first = connect_with_reconnect(url, target.api_key)
    lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
    last_event_id = None
    for event in first.events():
        last_event_id = event.id
        if event.event == "output":
            data = json.loads(event.data)
            lines[data["stream"]].append(data["line"])
            if data["line"] == RELEASE_AFTER:
                break
    first.close()
    assert last_event_id, "no event id before the break"

    rest = connect_with_reconnect(url, target.api_key, last_event_id)
    exit_code = None
    for event in rest.events():
        data = json.loads(event.data)
        if event.event == "output":
            lines[data["stream"]].append(data["line"])
        elif event.event == "complete":
            exit_code = data["exit_code"]
            break
    rest.close()
    assert_complete_output(lines["stdout"], lines["stderr"], exit_code)
