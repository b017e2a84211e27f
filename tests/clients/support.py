"""The user's SSE client examples, run as written: their text, their constants, their output.

Each example in SSE_CLIENTS.md is kept verbatim under `examples/`. A test substitutes
only the literal constants the user wrote (base URL, project, command, key, stream
id) by text replacement, runs the result with the real tool, and parses what it
printed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.support import ROOT

EXAMPLES = Path(__file__).resolve().parent / "examples"
NODE_DIR = Path(__file__).resolve().parent / "node"
ARTIFACTS = ROOT / "test-artifacts" / "clients"

# Every stdout and stderr line must arrive, in order per stream, then the exit code.
LINES = 50
COMMAND = f"for i in $(seq 1 {LINES}); do echo out $i; echo err $i >&2; done; exit 7"
EXPECTED_STDOUT = [f"out {i}" for i in range(1, LINES + 1)]
EXPECTED_STDERR = [f"err {i}" for i in range(1, LINES + 1)]
EXPECTED_EXIT_CODE = 7

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
}


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
    stream_id: str = DOC_STREAM_ID

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
            text = replace_literal(text, command_literal, quote(COMMAND))
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
    env.update(extra)
    return env
