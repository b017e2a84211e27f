"""A run whose workspace pod is not Ready yet says what it waits for, as run events."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from rdev_common.events import CloudEvent
from rdev_executor.adapters.kubernetes_backend import KubernetesBackend
from tests.kubernetes.apiserver_double import ApiServerDouble
from tests.kubernetes.conftest import WAIT_S, Run, backend_options

PROGRESS = "dev.rdev.command.progress.v1"


async def next_progress(run: Run) -> CloudEvent:
    """The run's next event, which must be a progress event (nothing else comes between)."""
    event = await run.next_event()
    assert event.type == PROGRESS, [e.type for e in run.events]
    return event


async def test_a_pod_waiting_for_a_node_then_pulling_shows_its_progress_as_run_events(
    apiserver: ApiServerDouble, kubeconfig: Path, start_run_with: Any
) -> None:
    image = "registry.example/big-image:7"
    pulled = apiserver.slow_pulls[image] = asyncio.Event()
    # Unschedulable at first, within a grace long enough for an autoscaler to add a node.
    backend = KubernetesBackend(backend_options(kubeconfig, unschedulable_grace_s=WAIT_S))
    try:
        start = start_run_with(backend)
        run = await start("echo ready", spec={"image": image, "node_selector": {"pool": "gpu"}})
        assert (await run.next_event()).type == "dev.rdev.command.started.v1"

        shown = [await next_progress(run)]
        while not shown[-1].data["message"].startswith("waiting for a node"):
            shown.append(await next_progress(run))
        # Maybe "waiting to be scheduled" first (if the executor looked before the
        # scheduler answered), then the scheduler's reason, in the phase "scheduling".
        first, *_ = shown
        assert [e.data["message"] for e in shown[:-1]] in ([], ["waiting to be scheduled"])
        assert {e.data["phase"] for e in shown} == {"scheduling"}
        assert (
            shown[-1]
            .data["message"]
            .startswith("waiting for a node: 0/2 nodes are available: 2 node(s) didn't match")
        )
        assert first.data["command_id"] == run.request.command_id
        assert first.data["project"] == "demo"
        assert first.subject == run.request.command_id

        apiserver.add_node("gpu-1", {"pool": "gpu"})  # the autoscaler's new node joins
        pulling = await next_progress(run)
        assert (pulling.data["phase"], pulling.data["message"]) == (
            "pulling",
            f"pulling image {image} and creating the container",
        )

        pulled.set()
        outcome = await asyncio.wait_for(run.outcome(), WAIT_S)
        assert (outcome.reason, outcome.exit_code) == ("exited", 0), run.completed()
        assert run.lines("stdout") == ["ready"]
        # Once per change, not once per poll: those above are all there were, and all
        # came before the output.
        kinds = [e.type for e in run.events]
        assert kinds.count(PROGRESS) == len(shown) + 1, kinds
        assert kinds.index("dev.rdev.command.output.v2") > len(shown) + 1, kinds
    finally:
        await backend.aclose()


async def test_a_ready_pod_shows_no_progress(start_run: Any) -> None:
    first = await start_run("true")
    assert (await first.outcome()).exit_code == 0
    run = await start_run("echo again")  # the pod is Ready: nothing to wait for
    outcome = await run.outcome()
    assert (outcome.reason, outcome.exit_code) == ("exited", 0), run.completed()
    assert PROGRESS not in [e.type for e in run.events]
