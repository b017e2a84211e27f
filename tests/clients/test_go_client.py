"""The Go example of SSE_CLIENTS.md (standard library only), run as written with `go run`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tests.clients.conftest import require_tool
from tests.clients.support import (
    LONG_LINES,
    ClientOutput,
    Scenario,
    Target,
    assert_complete_output,
    assert_long_line,
    example,
    js_string,
    long_line_command,
    run_client,
    tool_env,
)

pytestmark = pytest.mark.e2e


def run_go_example(target: Target, scenario: Scenario, tmp_path: Path) -> ClientOutput:
    go = require_tool("go", "the Go example (Debian package golang-go)")
    code = replace(target, command=scenario.command).apply(
        example("go_client/main.go"), '"go test ./..."', js_string
    )
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
    printed = run_client(
        [go, "run", "main.go"],
        cwd=source.parent,
        env=env,
        scenario=scenario,
        artifact=f"go_client-{scenario.name}.log",
    )
    return ClientOutput.parse(printed)


def test_go_example(target: Target, scenario: Scenario, tmp_path: Path) -> None:
    out = run_go_example(target, scenario, tmp_path)
    assert_complete_output(out.stdout, out.stderr, out.exit_code("Exit code: "))


@pytest.mark.parametrize("kind", sorted(LONG_LINES))
def test_go_example_with_the_longest_lines(target: Target, kind: str, tmp_path: Path) -> None:
    """Go's bufio.Scanner, which the example reads with, stops at lines over 64 KiB: rdev's
    widest `data:` lines (a whole piece of control or astral-plane characters) must fit."""
    scenario = Scenario(f"long-{kind}", long_line_command(kind))
    out = run_go_example(target, scenario, tmp_path)
    assert_long_line(out, kind)
    assert out.exit_code("Exit code: ") == 0
