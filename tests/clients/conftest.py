"""Fixtures of the client-compatibility tests: a project on the running system, and tools."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.clients.support import NODE_DIR, Target
from tests.support import RdevSystem

PROJECT = "sse-clients"


@pytest.fixture(scope="session")
def target(rdev: RdevSystem) -> Target:
    """The real values for the examples' constants, with the project created."""
    rdev.create_project(PROJECT)
    return Target(base_url=rdev.base_url, project=PROJECT, api_key=rdev.api_key)


def require_tool(name: str, purpose: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"`{name}` is not installed: {purpose} skipped (CI installs it via .ci/run)")
    return path


@pytest.fixture(scope="session")
def node_eventsource() -> str:
    """`node`, with tests/clients/node's locked eventsource 2.x installed (npm ci if missing)."""
    node = require_tool("node", "the Node eventsource example")
    if not (NODE_DIR / "node_modules" / "eventsource" / "package.json").is_file():
        npm = require_tool("npm", "installing the Node eventsource package for its example")
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0:
            pytest.skip(
                "the Node package `eventsource` is missing and `npm ci` in tests/clients/node "
                f"failed: {result.stderr.strip()[-500:]}"
            )
    return node
