"""Fixtures of the client-compatibility tests: a project on the running system, and tools."""

from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest

from tests.clients.support import (
    COMMAND,
    NODE_DIR,
    Scenario,
    Target,
    await_heartbeat,
    gated_command,
)
from tests.support import RdevSystem

PROJECT = "sse-clients"


@pytest.fixture(scope="session")
def target(rdev: RdevSystem) -> Target:
    """The real values for the examples' constants, with the project created."""
    workdir = rdev.create_project(PROJECT)
    return Target(rdev.base_url, PROJECT, rdev.api_key, workdir)


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


@pytest.fixture(params=["quick", "live"])
def scenario(request: pytest.FixtureRequest, rdev: RdevSystem, target: Target) -> Scenario:
    """`quick`: the run may well finish before the client connects, and is replayed.

    `live`: the run pauses after its first half until the client has printed that half
    and a heartbeat has gone out on the client's connection; then it finishes.
    """
    if request.param == "quick":
        return Scenario("quick", COMMAND)
    gate = target.workdir / f"gate-{uuid.uuid4().hex}"
    return Scenario(
        "live",
        gated_command(gate.name),
        gate,
        lambda: await_heartbeat(rdev.base_url, rdev.api_key, target.project),
    )
