"""Two executors against one API server: idle collection never deletes a pod that
the other one started using after the collector judged it idle."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rdev_executor.adapters.kubernetes_backend import KubernetesBackend
from tests.kubernetes.apiserver_double import ApiServerDouble
from tests.kubernetes.conftest import NAMESPACE, WAIT_S, backend_options
from tests.support import wait_for_async


async def test_a_pod_used_by_one_executor_survives_the_others_idle_collection(
    apiserver: ApiServerDouble,
    backend: KubernetesBackend,
    kubeconfig: Path,
    start_run: Any,
) -> None:
    assert (await (await start_run("true")).outcome()).exit_code == 0
    ((ns, name),) = apiserver.pods

    collector = KubernetesBackend(backend_options(kubeconfig, idle_gc_s=600))
    try:
        # The collector's clock is an hour ahead: to it, the pod is long idle.
        collector.pods._now = lambda: datetime.now(UTC) + timedelta(hours=1)
        release = apiserver.hold("DELETE")  # its DELETE is slow to arrive
        collecting = asyncio.create_task(collector.pods.collect_idle(NAMESPACE))
        await wait_for_async(
            lambda: apiserver.held["DELETE"] == 1, WAIT_S, "the held DELETE", interval=0.02
        )

        run = await start_run("echo started; sleep 2; echo finished")  # the other executor
        await run.wait_for_output("started")
        release.set()
        assert await collecting == [], "the collector deleted a pod in use"
        outcome = await run.outcome()
        assert (outcome.reason, outcome.exit_code) == ("exited", 0), run.completed()
        assert run.lines("stdout") == ["started", "finished"]
        assert (ns, name) in apiserver.pods
        assert not apiserver.pods[(ns, name)]["metadata"].get("deletionTimestamp")
    finally:
        await collector.aclose()


async def test_both_executors_share_one_pod_and_each_sees_its_own_commands(
    apiserver: ApiServerDouble, backend: KubernetesBackend, kubeconfig: Path, start_run_with: Any
) -> None:
    other = KubernetesBackend(backend_options(kubeconfig))
    try:
        starts = [start_run_with(backend), start_run_with(other)]
        runs = [await starts[i % 2](f"echo {i}") for i in range(4)]
        for i, run in enumerate(runs):
            outcome = await run.outcome()
            assert (outcome.reason, outcome.exit_code) == ("exited", 0), run.completed()
            assert run.lines("stdout") == [str(i)]
        assert len(apiserver.pods) == 1
    finally:
        await other.aclose()
