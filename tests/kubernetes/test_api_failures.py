"""The circuit breaker around the Kubernetes API, and per-command backend routing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from rdev_common.circuit_breaker import State
from rdev_common.events import CommandRequested
from rdev_executor.adapters.kubernetes_backend import KubernetesBackend
from rdev_executor.adapters.local_backend import LocalBackend
from rdev_executor.adapters.routing_backend import KubernetesDisabled, RoutingBackend
from tests.kubernetes.apiserver_double import ApiServerDouble
from tests.kubernetes.conftest import FakeClock


def circuit_metric(state: str) -> float | None:
    return REGISTRY.get_sample_value(
        "rdev_k8s_api_circuit_state", {"rdev_k8s_api_circuit_state": state}
    )


FAIL_FAST = "the Kubernetes API is unavailable: circuit open after repeated failures"


async def test_api_server_down_opens_the_breaker_then_it_recovers(
    apiserver: ApiServerDouble,
    backend: KubernetesBackend,
    breaker_clock: FakeClock,
    start_run: Any,
) -> None:
    assert (await (await start_run("true")).outcome()).exit_code == 0
    await apiserver.stop()
    for _ in range(3):  # failure_threshold in the fixture
        outcome = await (await start_run("echo never")).outcome()
        assert (outcome.reason, outcome.exit_code) == ("error", 255)
        assert (outcome.error or "").startswith("the Kubernetes API failed: Cannot connect")
    assert backend.breaker.state is State.OPEN
    assert circuit_metric("open") == 1

    outcome = await (await start_run("echo never")).outcome()
    assert (outcome.reason, outcome.exit_code) == ("error", 255)
    assert (outcome.error or "").startswith(FAIL_FAST), outcome.error

    await apiserver.start()  # same port
    breaker_clock.now += 29
    outcome = await (await start_run("echo never")).outcome()
    assert (outcome.error or "").startswith(FAIL_FAST), "recovered before the cool-down"
    breaker_clock.now += 1
    run = await start_run("echo back")
    outcome = await run.outcome()
    assert (outcome.reason, outcome.exit_code) == ("exited", 0), run.completed()
    assert run.lines("stdout") == ["back"]
    assert backend.breaker.state.value == "closed"
    assert circuit_metric("closed") == 1


async def test_an_open_breaker_sends_nothing_to_the_api_server(
    apiserver: ApiServerDouble, backend: KubernetesBackend, start_run: Any
) -> None:
    apiserver.failing = True
    for _ in range(3):
        outcome = await (await start_run("true")).outcome()
        assert outcome.error == (
            "the Kubernetes API failed: 503 Service Unavailable: "
            "the server is currently unable to respond"
        )
    assert backend.breaker.state is State.OPEN
    seen = sum(apiserver.requests.values())
    for _ in range(5):
        outcome = await (await start_run("true")).outcome()
        assert (outcome.error or "").startswith(FAIL_FAST)
    assert sum(apiserver.requests.values()) == seen, "an open breaker still called the API"


async def test_not_found_and_conflicts_do_not_open_the_breaker(
    apiserver: ApiServerDouble, backend: KubernetesBackend, start_run: Any
) -> None:
    for _ in range(5):  # each: GET 404, then POST; pods of other specs
        run = await start_run("true", spec={"image": f"img:{_}"})
        assert (await run.outcome()).exit_code == 0
    assert backend.breaker.state is State.CLOSED


async def test_a_project_without_a_spec_runs_locally(
    backend: KubernetesBackend, apiserver: ApiServerDouble, tmp_path: Path
) -> None:
    routing = RoutingBackend(LocalBackend(), backend)
    req = CommandRequested(
        command_id="c1", project="p", command="echo local", workdir=str(tmp_path)
    )
    process = await routing.start(req, {})
    chunks = [c async for c in process.output()]
    assert await process.wait() == 0
    assert b"".join(c.data for c in chunks) == b"local\n"
    assert not apiserver.requests, "a spec-less command reached the Kubernetes API"


async def test_a_kubernetes_project_never_falls_back_to_the_host(tmp_path: Path) -> None:
    routing = RoutingBackend(LocalBackend(), None)
    req = CommandRequested(
        command_id="c1",
        project="p",
        command="echo host",
        workdir=str(tmp_path),
        kubernetes={"image": "img"},
    )
    with pytest.raises(KubernetesDisabled, match="RDEV_EXECUTOR_BACKEND=local"):
        await routing.start(req, {})


async def test_a_refusal_is_reported_in_one_line_and_does_not_open_the_breaker(
    apiserver: ApiServerDouble, backend: KubernetesBackend, start_run: Any
) -> None:
    for _ in range(4):  # the executor's Role grants nothing in namespace "other"
        outcome = await (await start_run("true", spec={"namespace": "other"})).outcome()
        assert outcome.error == (
            'the Kubernetes API refused: 403 Forbidden: pods "" is forbidden: User '
            '"system:serviceaccount:rdev:rdev-executor" cannot list resource "pods" '
            'in API group "" in the namespace "other"'
        ), outcome.error
    assert backend.breaker.state is State.CLOSED
