"""The Python examples of SSE_CLIENTS.md (sseclient-py + requests, aiohttp), run as written."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest

from tests.clients.support import (
    ClientOutput,
    Scenario,
    Target,
    assert_complete_output,
    example,
    run_client,
    tool_env,
)

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


def test_aiohttp_example(target: Target, scenario: Scenario, tmp_path: Path) -> None:
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
    out = ClientOutput.parse(printed)
    assert_complete_output(out.stdout, out.stderr, out.exit_code("Exit code: "))
