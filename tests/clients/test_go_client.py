"""The Go example of SSE_CLIENTS.md (standard library only), run as written with `go run`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.clients.conftest import require_tool
from tests.clients.support import (
    ClientOutput,
    Target,
    assert_complete_output,
    example,
    js_string,
    save_artifact,
    tool_env,
)

pytestmark = pytest.mark.e2e


def test_go_example(target: Target, tmp_path: Path) -> None:
    go = require_tool("go", "the Go example (Debian package golang-go)")
    code = target.apply(example("go_client/main.go"), '"go test ./..."', js_string)
    source = tmp_path / "go_client" / "main.go"
    source.parent.mkdir()
    source.write_text(code)
    # A private cache and GOPATH; the example needs no module, so nothing is downloaded.
    env = tool_env(
        GOCACHE=str(tmp_path / "gocache"),
        GOPATH=str(tmp_path / "gopath"),
        GOPROXY="off",
        GOFLAGS="",
        GOTOOLCHAIN="local",
    )
    result = subprocess.run(
        [go, "run", "main.go"],
        cwd=source.parent,
        capture_output=True,
        text=True,
        timeout=280,
        env=env,
    )
    save_artifact("go_client.log", result.stdout + result.stderr)
    assert result.returncode == 0, f"go run failed:\n{result.stderr}"
    out = ClientOutput.parse(result.stdout)
    assert_complete_output(out.stdout, out.stderr, out.exit_code("Exit code: "))
