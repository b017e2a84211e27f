"""The user's SSE client examples, run as written: their text, their constants, their output.

Each example in SSE_CLIENTS.md is kept verbatim under `examples/`. A test substitutes
only the literal constants the user wrote (base URL, project, command, key, stream
id) by text replacement, runs the result with the real tool, and parses what it
printed.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from tests.support import ROOT

EXAMPLES = Path(__file__).resolve().parent / "examples"
NODE_DIR = Path(__file__).resolve().parent / "node"
ARTIFACTS = ROOT / "test-artifacts" / "clients"

# The constants as the user wrote them in SSE_CLIENTS.md.
DOC_BASE_URL = "http://localhost:8080"
DOC_PROJECT = "my-project"
DOC_KEY = "rdev_xxx"
DOC_STREAM_ID = "cmd-001"

# Which code block of SSE_CLIENTS.md each copy is: the heading it sits under.
DOC_BLOCKS = {
    "browser.js": "### Browser with EventSource",
    "node_eventsource.js": "### Node.js with eventsource package",
    "python_sseclient.py": "### Using sseclient-py",
    "python_aiohttp.py": "### Using aiohttp (async)",
    "go_client/main.go": "## Go",
    "python_reconnect.py": "### Python",  # under "## Reconnection Handling"
}


# Every stdout and stderr line must arrive, in order per stream, then the exit code.
LINES = 50
COMMAND = f"for i in $(seq 1 {LINES}); do echo out $i; echo err $i >&2; done; exit 7"
EXPECTED_STDOUT = [f"out {i}" for i in range(1, LINES + 1)]
EXPECTED_STDERR = [f"err {i}" for i in range(1, LINES + 1)]
EXPECTED_EXIT_CODE = 7
HALF = LINES // 2
# Where a live run pauses until the test saw the client print it: proof of live streaming.
RELEASE_AFTER = f"out {HALF}"


def gated_command(gate: str) -> str:
    """COMMAND's output, paused after line HALF until `gate` exists (exit 99 after ~60 s)."""
    loop = "for i in $(seq {} {}); do echo out $i; echo err $i >&2; done"
    wait = (
        f"n=0; while [ ! -e {gate} ]; do n=$((n+1)); [ $n -gt 1200 ] && exit 99; sleep 0.05; done"
    )
    return f"{loop.format(1, HALF)}; {wait}; {loop.format(HALF + 1, LINES)}; exit 7"


# Lines wider than the executor's split point, in the characters whose JSON encoding is
# widest: control characters (6 bytes each, \u0001) and astral-plane ones (4 bytes of UTF-8).
LONG_LINES = {
    "ascii": "x" * 20_000,
    "control": chr(1) * 20_000,
    "emoji": chr(0x1F600) * 20_000,
}


def long_line_command(kind: str) -> str:
    """A command printing LONG_LINES[kind] on stdout."""
    line = LONG_LINES[kind]
    return f'python3 -c "print(chr({ord(line[0])}) * {len(line)})"'


def assert_long_line(out: ClientOutput, kind: str) -> None:
    """The line arrives whole, split into the pieces rdev sends, and nothing else.

    rdev splits a line wider than its limit into pieces flagged `partial`; a piece read
    before the rest of the line arrived may be followed by an empty one that ends it.
    """
    assert out.stderr == []
    pieces = out.stdout
    assert "".join(pieces) == LONG_LINES[kind], (
        f"got {len(pieces)} pieces: {[len(p) for p in pieces]}"
    )


@dataclass(frozen=True)
class Scenario:
    """The command a client runs; a gated one finishes only once `release()` is called."""

    name: str
    command: str
    gate: Path | None = None
    before_release: Callable[[], None] | None = None

    def release(self) -> None:
        if self.before_release is not None:
            self.before_release()
        if self.gate is not None:
            self.gate.touch()


def await_heartbeat(base_url: str, api_key: str, project: str, timeout: float = 120) -> None:
    """Block until a project event stream opened now receives its first heartbeat.

    rdev times heartbeats per connection from its start, so a client connected before
    this call has been sent its own heartbeat by the time this one arrives.
    """
    url = f"{base_url}/projects/{project}/events"
    try:
        with httpx.stream("GET", url, headers={"X-API-Key": api_key}, timeout=timeout) as response:
            assert response.status_code == 200, f"GET {url}: {response.status_code}"
            for line in response.iter_lines():
                if line.strip() == "event: heartbeat":
                    return
    except httpx.ReadTimeout:
        pass
    raise AssertionError(f"no heartbeat on {url} within {timeout}s")


def doc_path() -> Path | None:
    """SSE_CLIENTS.md, next to the repository (../shared) or at /work/shared, if present."""
    candidates = (ROOT.parent / "shared", Path("/work/shared"))
    for candidate in (folder / "SSE_CLIENTS.md" for folder in candidates):
        if candidate.is_file():
            return candidate
    return None


def doc_code_blocks(markdown: str) -> dict[str, str]:
    """The first fenced code block under each heading, keyed by the heading line."""
    blocks: dict[str, str] = {}
    heading = ""
    body: list[str] | None = None
    for line in markdown.splitlines():
        if body is None:
            if line.startswith("#"):
                heading = line.strip()
            elif line.lstrip().startswith("```"):
                body = []
        elif line.lstrip().startswith("```"):
            blocks.setdefault(heading, "\n".join(body))
            body = None
        else:
            body.append(line)
    return blocks


def normalise(code: str) -> list[str]:
    """Code compared modulo whitespace: runs of blanks collapsed, blank lines dropped."""
    return [" ".join(line.split()) for line in code.splitlines() if line.strip()]


def example(name: str) -> str:
    return (EXAMPLES / name).read_text()


def replace_literal(text: str, old: str, new: str) -> str:
    """Replace a constant the example must contain; a missing one means the example changed."""
    if old not in text:
        raise AssertionError(f"the example no longer contains the literal {old!r}")
    return text.replace(old, new)


@dataclass(frozen=True)
class Target:
    """The real values the doc's constants are replaced with."""

    base_url: str
    project: str
    api_key: str
    workdir: Path
    stream_id: str = DOC_STREAM_ID
    command: str = COMMAND

    def apply(
        self,
        text: str,
        command_literal: str | None = None,
        quote: Callable[[str], str] = json.dumps,
    ) -> str:
        """Substitute the doc's constants an example contains; the key it must contain.

        `command_literal` is the doc's command with its quotes; `quote` renders ours.
        """
        if command_literal is not None:
            text = replace_literal(text, command_literal, quote(self.command))
        text = replace_literal(text, DOC_KEY, self.api_key)
        for old, new in (
            (DOC_BASE_URL, self.base_url),
            (DOC_PROJECT, self.project),
            (DOC_STREAM_ID, self.stream_id),
        ):
            text = text.replace(old, new)
        return text


def js_string(value: str) -> str:
    # A JSON string is a valid JavaScript (and, for ASCII, Go) string literal.
    return json.dumps(value)


@dataclass
class ClientOutput:
    """What an example printed: `[stream] line` lines per stream, and the rest."""

    stdout: list[str]
    stderr: list[str]
    other: list[str]

    @classmethod
    def parse(cls, printed: str) -> ClientOutput:
        out: ClientOutput = cls([], [], [])
        for line in printed.splitlines():
            if line.startswith("[stdout] "):
                out.stdout.append(line.removeprefix("[stdout] "))
            elif line.startswith("[stderr] "):
                out.stderr.append(line.removeprefix("[stderr] "))
            else:
                out.other.append(line)
        return out

    def exit_code(self, prefix: str) -> int | None:
        """The value of the last line starting with `prefix` (e.g. 'Exit code: ')."""
        found = [line.removeprefix(prefix) for line in self.other if line.startswith(prefix)]
        return int(found[-1]) if found else None


def assert_complete_output(stdout: list[str], stderr: list[str], exit_code: int | None) -> None:
    assert stdout == EXPECTED_STDOUT, f"stdout lines differ: got {stdout!r}"
    assert stderr == EXPECTED_STDERR, f"stderr lines differ: got {stderr!r}"
    assert exit_code == EXPECTED_EXIT_CODE, f"exit code {exit_code!r}, expected 7"


def save_artifact(name: str, content: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    path.write_text(content)
    return path


def tool_env(**extra: str) -> dict[str, str]:
    """The environment for an example's process: no rdev settings, no proxies to surprise it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RDEV_")}
    for proxy in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        env.pop(proxy, None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    # Like a user's terminal: UTF-8 whatever the locale of the test machine.
    env["PYTHONUTF8"] = "1"
    env.update(extra)
    return env


def run_client(
    argv: list[str],
    *,
    env: dict[str, str],
    scenario: Scenario,
    artifact: str,
    cwd: Path | None = None,
) -> str:
    """Run an example to its end and return what it printed to stdout.

    For a gated scenario the gate opens once the client printed `[stdout] out HALF`:
    the command is still running then, so that output reached the client live.
    """
    lines: queue.Queue[str | None] = queue.Queue()
    with (
        tempfile.TemporaryFile("w+", encoding="utf-8") as errors,
        subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            encoding="utf-8",
        ) as process,
    ):
        assert process.stdout is not None
        threading.Thread(target=_forward_lines, args=(process.stdout, lines), daemon=True).start()
        printed: list[str] = []
        try:
            while (line := lines.get(timeout=240)) is not None:
                printed.append(line)
                if line.rstrip("\n") == f"[stdout] {RELEASE_AFTER}":
                    scenario.release()
            process.wait(timeout=60)
        except (queue.Empty, subprocess.TimeoutExpired):
            process.kill()
            printed.append("<the client printed nothing more for 240 s and was killed>\n")
        errors.seek(0)
        stderr = errors.read()
    save_artifact(artifact, "".join(printed) + stderr)
    assert process.returncode == 0, f"{argv[0]} exited {process.returncode}:\n{stderr}"
    return "".join(printed)


def _forward_lines(pipe: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in pipe:
        lines.put(line)
    lines.put(None)
