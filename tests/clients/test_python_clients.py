"""The Python examples of SSE_CLIENTS.md (sseclient-py + requests, aiohttp), run as written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.clients.support import (
    ClientOutput,
    Target,
    assert_complete_output,
    example,
    save_artifact,
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


def run_python(script: Path, *wrapper: str) -> str:
    argv = [sys.executable, *wrapper, str(script)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=tool_env())
    save_artifact(f"{script.stem}.log", result.stdout + result.stderr)
    assert result.returncode == 0, f"{script.name} failed:\n{result.stderr}"
    return result.stdout


def test_sseclient_py_example(target: Target, tmp_path: Path) -> None:
    code = target.apply(example("python_sseclient.py"), "'pip install -r requirements.txt'", repr)
    script = tmp_path / "python_sseclient.py"
    script.write_text(code)
    out = ClientOutput.parse(run_python(script))
    assert any(line.startswith("Connected: ") for line in out.other), out.other
    assert_complete_output(out.stdout, out.stderr, out.exit_code("Exit code: "))


def test_aiohttp_example(target: Target, tmp_path: Path) -> None:
    code = target.apply(example("python_aiohttp.py"), "'make build'", repr)
    script = tmp_path / "python_aiohttp.py"
    script.write_text(code)
    out = ClientOutput.parse(run_python(script, "-c", SHOW_RESULT))
    assert_complete_output(out.stdout, out.stderr, out.exit_code("Exit code: "))
