"""Workspace pods in trouble: never Ready, stuck Terminating, OOM-killed, name collisions."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from rdev_executor.adapters.k8s_spec import KubernetesSpec, pod_name
from tests.kubernetes.apiserver_double import ApiServerDouble
from tests.kubernetes.conftest import NAMESPACE, SPEC, process_group_gone
from tests.kubernetes.test_exec import apiserver_delete

FAST_S = 30  # well under the fixture's 60 s ready timeout: a fast failure, not a timeout


async def test_an_unschedulable_pod_fails_the_run_with_the_schedulers_reason(
    apiserver: ApiServerDouble, start_run: Any
) -> None:
    run = await start_run("true", spec={"node_selector": {"pool": "gpu"}})
    outcome = await asyncio.wait_for(run.outcome(), FAST_S)
    (name,) = {uri.rsplit("/", 1)[1] for uri in apiserver.uris if "/pods/" in uri}
    assert (outcome.reason, outcome.exit_code) == ("error", 255)
    assert outcome.error == (
        f"workspace pod {name} cannot be scheduled: 0/2 nodes are available: 2 node(s) didn't "
        "match Pod's node affinity/selector. preemption: 0/2 nodes are available: 2 Preemption "
        "is not helpful for scheduling."
    )


async def test_an_image_that_cannot_be_pulled_fails_after_a_few_tries(
    apiserver: ApiServerDouble, start_run: Any
) -> None:
    image = "registry.example/typo:1"
    apiserver.unpullable_images.add(image)
    run = await start_run("true", spec={"image": image})
    outcome = await asyncio.wait_for(run.outcome(), FAST_S)
    (name,) = {uri.rsplit("/", 1)[1] for uri in apiserver.uris if "/pods/" in uri}
    assert (outcome.reason, outcome.exit_code) == ("error", 255)
    assert outcome.error == (
        f"workspace pod {name} cannot pull image {image} after 3 tries: "
        f'ImagePullBackOff: Back-off pulling image "{image}"'
    )
    # The pod is deleted: once the image exists, the next command pulls it afresh.
    apiserver.unpullable_images.clear()
    run = await start_run("echo pulled", spec={"image": image})
    outcome = await run.outcome()
    assert (outcome.reason, outcome.exit_code) == ("exited", 0), run.completed()


async def test_a_pod_stuck_terminating_is_replaced_under_a_new_name(
    apiserver: ApiServerDouble, start_run: Any
) -> None:
    assert (await (await start_run("true")).outcome()).exit_code == 0
    ((ns, stuck),) = apiserver.pods
    apiserver.add_finalizer(ns, stuck)  # as a node that never confirms, or a finalizer
    await apiserver_delete(apiserver, ns, stuck)
    run = await start_run("echo carried on")
    outcome = await asyncio.wait_for(run.outcome(), FAST_S)
    assert (outcome.reason, outcome.exit_code) == ("exited", 0), run.completed()
    assert run.lines("stdout") == ["carried on"]
    assert apiserver.pods[(ns, stuck)]["metadata"]["deletionTimestamp"]  # still there
    spec = KubernetesSpec.parse({**SPEC, **run.request.kubernetes}, NAMESPACE)
    assert set(apiserver.pods) == {(ns, stuck), (ns, pod_name("demo", spec, 1))}


async def test_an_oom_kill_is_reported_as_killed_for_memory_with_the_limit(
    apiserver: ApiServerDouble, start_run: Any, tmp_path: Path
) -> None:
    pidfile = tmp_path / "workspace" / "pgid"
    runs = [
        await start_run(f"echo $$ > {pidfile}; echo started; sleep 300"),
        await start_run("echo started; sleep 300"),  # same container, same fate
    ]
    for run in runs:
        await run.wait_for_output("started")
    ((ns, name),) = apiserver.pods
    apiserver.oom_kill(ns, name, status_delay_s=1.0)  # the kubelet tells a second later
    for run in runs:
        outcome = await run.outcome()
        assert (outcome.reason, outcome.exit_code) == ("error", 255), run.completed()
        assert outcome.error == (
            f"workspace pod {name} was killed for memory (OOMKilled at its memory limit of 1Gi); "
            "the container restarted while the command ran"
        )
    assert await process_group_gone(int(pidfile.read_text()))
    after = await start_run("echo next")  # the restarted container serves the project again
    assert (await after.outcome()).exit_code == 0, after.completed()


async def test_projects_sharing_a_long_prefix_get_pods_of_their_own(
    apiserver: ApiServerDouble, start_run: Any
) -> None:
    prefix = "team-" + "x" * 39  # 44 characters shared
    for project in (f"{prefix}-one", f"{prefix}-two"):
        run = await start_run("true", project=project)
        assert (await run.outcome()).exit_code == 0, run.completed()
    owners = sorted(p["metadata"]["labels"]["rdev.dev/project"] for p in apiserver.pods.values())
    assert owners == [f"{prefix}-one", f"{prefix}-two"]
