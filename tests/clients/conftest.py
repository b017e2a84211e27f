"""Fixtures of the client-compatibility tests: a project on the running system, and tools."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from tests.clients.proxy import CuttingProxy, cutting_proxy
from tests.clients.support import (
    COMMAND,
    NODE_DIR,
    Scenario,
    Target,
    await_heartbeat,
    gated_command,
)
from tests.support import RdevSystem, wait_for

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


@pytest.fixture
def proxy(rdev: RdevSystem) -> Iterator[CuttingProxy]:
    """rdev behind a forwarder that can drop the open event streams."""
    with cutting_proxy(rdev.port) as forwarder:
        yield forwarder


@pytest.fixture
def reconnect(target: Target, proxy: CuttingProxy) -> Scenario:
    """A gated run whose event stream is dropped after the client printed the first half;
    the run resumes once the client has reconnected."""
    gate = target.workdir / f"gate-{uuid.uuid4().hex}"

    def drop_and_await_reconnect() -> None:
        assert proxy.cut_event_streams() >= 1, "no event stream was open to drop"
        wait_for(
            lambda: len(proxy.event_requests) >= 2,
            60,
            "the client did not reconnect after its event stream was dropped",
        )

    return Scenario("reconnect", gated_command(gate.name), gate, drop_and_await_reconnect)
