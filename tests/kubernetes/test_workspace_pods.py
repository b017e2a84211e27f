"""Workspace pods: created from the project's spec, labelled, Ready, reused, collected."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rdev_common.circuit_breaker import CircuitBreaker
from rdev_common.events import CommandRequested
from rdev_executor.adapters.k8s_api import KubeApi, RetryPolicy, is_api_failure
from rdev_executor.adapters.k8s_pods import StartupPolicy, WorkspacePods
from rdev_executor.adapters.k8s_spec import KubernetesSpec, pod_name
from rdev_executor.adapters.kubernetes_backend import KubernetesBackend, KubernetesOptions
from tests.kubernetes.apiserver_double import ApiServerDouble
from tests.kubernetes.conftest import NAMESPACE, SPEC


async def test_first_command_creates_a_labelled_ready_pod_and_later_ones_reuse_it(
    apiserver: ApiServerDouble, start_run: Any
) -> None:
    first = await start_run("echo one")
    outcome = await first.outcome()
    assert (outcome.reason, outcome.exit_code) == ("exited", 0), first.completed()
    assert first.lines("stdout") == ["one"]

    assert len(apiserver.pods) == 1, apiserver.pods
    (ns, name), pod = next(iter(apiserver.pods.items()))
    assert ns == NAMESPACE and name.startswith("rdev-ws-demo-")
    labels = pod["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "rdev"
    assert labels["rdev.dev/project"] == "demo"
    ready = [c for c in pod["status"]["conditions"] if c["type"] == "Ready"]
    assert pod["status"]["phase"] == "Running" and ready[0]["status"] == "True"
    spec = pod["spec"]
    container = spec["containers"][0]
    assert container["image"] == SPEC["image"]
    assert container["resources"] == SPEC["resources"]
    assert {"name": "FROM_SPEC", "value": "spec-value"} in container["env"]
    assert spec["serviceAccountName"] == "builder"
    assert spec["nodeSelector"] == {"pool": "workspaces"}

    second = await start_run("echo two; echo $FROM_SPEC")
    assert (await second.outcome()).reason == "exited"
    assert second.lines("stdout") == ["two", "spec-value"]
    assert apiserver.requests[f"POST /api/v1/namespaces/{NAMESPACE}/pods"] == 1
    assert len(apiserver.execs) == 2


async def test_a_changed_spec_gets_a_new_pod(apiserver: ApiServerDouble, start_run: Any) -> None:
    await (await start_run("true")).outcome()
    await (await start_run("true", spec={"image": "registry.example/other:2"})).outcome()
    images = sorted(p["spec"]["containers"][0]["image"] for p in apiserver.pods.values())
    assert images == ["registry.example/other:2", SPEC["image"]]


async def test_invalid_spec_ends_the_run_with_a_clear_error(start_run: Any) -> None:
    run = await start_run("true", spec={"imagePullPolicy": "Always"})
    outcome = await run.outcome()
    assert (outcome.reason, outcome.exit_code) == ("error", 255)
    assert "unknown kubernetes spec keys: imagePullPolicy" in (outcome.error or "")


class FakeNow:
    def __init__(self) -> None:
        self.at = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.at


async def test_idle_pods_are_collected_and_busy_or_recent_ones_kept(
    apiserver: ApiServerDouble, kubeconfig: Path
) -> None:
    now = FakeNow()
    api = KubeApi(
        CircuitBreaker("k8s", is_failure=is_api_failure),
        kubeconfig=str(kubeconfig),
        context=None,
        retry=RetryPolicy(),
    )
    try:
        pods = WorkspacePods(
            api, idle_gc_s=600, startup=StartupPolicy(ready_timeout_s=20, poll_s=0.05), now=now
        )
        specs = {p: KubernetesSpec.parse({"image": "img"}, NAMESPACE) for p in ("a", "b", "c")}
        refs = {p: await pods.ensure(p, spec) for p, spec in specs.items()}
        assert [r.name for r in refs.values()] == [pod_name(p, s) for p, s in specs.items()]
        now.at += timedelta(seconds=500)
        await pods.touch(refs["b"])
        now.at += timedelta(seconds=200)  # a: 700 s idle, b: 200 s, c: 700 s but busy
        deleted = await pods.collect_idle(NAMESPACE, busy={refs["c"].uid})
        assert deleted == [pod_name("a", specs["a"])]
        base = f"DELETE /api/v1/namespaces/{NAMESPACE}/pods/"
        assert apiserver.requests[base + pod_name("a", specs["a"])] == 1
        assert apiserver.requests[base + pod_name("b", specs["b"])] == 0
        assert apiserver.requests[base + pod_name("c", specs["c"])] == 0
    finally:
        await api.aclose()


async def test_concurrent_first_commands_share_one_pod(
    apiserver: ApiServerDouble, start_run: Any
) -> None:
    runs = [await start_run(f"echo {i}") for i in range(3)]
    for i, run in enumerate(runs):
        outcome = await run.outcome()
        assert (outcome.reason, outcome.exit_code) == ("exited", 0), run.completed()
        assert run.lines("stdout") == [str(i)]
    assert len(apiserver.pods) == 1
    assert apiserver.requests[f"POST /api/v1/namespaces/{NAMESPACE}/pods"] >= 1


async def test_the_backend_collects_its_idle_pod_but_never_a_busy_one(
    apiserver: ApiServerDouble, kubeconfig: Path, tmp_path: Path
) -> None:
    backend = KubernetesBackend(
        KubernetesOptions(namespace=NAMESPACE, idle_gc_s=1.0, kubeconfig=str(kubeconfig))
    )
    try:
        req = CommandRequested(
            command_id="c1",
            project="demo",
            command="sleep 3; echo survived",
            kubernetes={"image": "img", "workdir": str(tmp_path)},
        )
        process = await backend.start(req, {})
        output = b"".join([c.data async for c in process.output()])
        assert await process.wait() == 0 and output == b"survived\n"
        touches = [k for k in apiserver.requests if k.startswith("PATCH")]
        assert touches, "the running command's pod was never marked as used"
        for _ in range(200):  # idle for 1 s, collected on the next sweep
            if not apiserver.pods:
                break
            await asyncio.sleep(0.05)
        assert not apiserver.pods, "the idle pod was not collected"
    finally:
        await backend.aclose()
