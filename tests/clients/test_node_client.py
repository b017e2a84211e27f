"""The Node example of SSE_CLIENTS.md (the `eventsource` package, v2 API), run as written."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tests.clients.proxy import CuttingProxy
from tests.clients.support import (
    NODE_DIR,
    ClientOutput,
    Scenario,
    Target,
    assert_complete_output,
    example,
    run_client,
    tool_env,
)
from tests.e2e.sse_helpers import submit
from tests.support import RdevSystem

pytestmark = pytest.mark.e2e


def run_node_example(
    rdev: RdevSystem, target: Target, scenario: Scenario, node: str, tmp_path: Path
) -> None:
    # The example only connects: the command is started first, as the user's own code would.
    with rdev.client() as client:
        stream_id = submit(client, target.project, scenario.command)
    # The doc's Node example carries no command: URL, project, stream id and key change.
    code = replace(target, stream_id=stream_id).apply(example("node_eventsource.js"))
    assert target.base_url in code and stream_id in code, code
    script = tmp_path / "node_eventsource.js"
    script.write_text(code)
    printed = run_client(
        [node, str(script)],
        env=tool_env(NODE_PATH=str(NODE_DIR / "node_modules")),
        scenario=scenario,
        artifact=f"node_eventsource-{scenario.name}.log",
    )
    out = ClientOutput.parse(printed)
    assert_complete_output(out.stdout, out.stderr, out.exit_code("Done: "))


def test_node_eventsource_example(
    rdev: RdevSystem, target: Target, scenario: Scenario, node_eventsource: str, tmp_path: Path
) -> None:
    run_node_example(rdev, target, scenario, node_eventsource, tmp_path)


def test_node_example_resumes_after_a_dropped_connection(
    rdev: RdevSystem,
    target: Target,
    proxy: CuttingProxy,
    reconnect: Scenario,
    node_eventsource: str,
    tmp_path: Path,
) -> None:
    """eventsource reconnects by itself with Last-Event-ID: no line lost, none repeated."""
    via_proxy = replace(target, base_url=proxy.base_url)
    run_node_example(rdev, via_proxy, reconnect, node_eventsource, tmp_path)
    assert len(proxy.event_requests) >= 2, proxy.event_requests
    assert proxy.event_requests[1], "the Node client reconnected without Last-Event-ID"
