"""Reaching the API server as a real one answers: throttling, TLS with expiring
credentials, and RBAC from the Role rdev deploys."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from rdev_common.circuit_breaker import State
from rdev_executor.adapters.kubernetes_backend import KubernetesBackend
from tests.kubernetes.apiserver_double import ApiServerDouble
from tests.kubernetes.conftest import backend_options
from tests.kubernetes.double_rbac import ROLE_FILE, Rbac


async def test_a_throttled_request_is_retried_after_retry_after_and_opens_nothing(
    apiserver: ApiServerDouble, backend: KubernetesBackend, start_run: Any
) -> None:
    apiserver.throttled = 3  # the breaker's threshold, were they failures; 3 retries get past
    run = await start_run("echo through")
    outcome = await run.outcome()
    assert (outcome.reason, outcome.exit_code) == ("exited", 0), run.completed()
    assert run.lines("stdout") == ["through"]
    assert apiserver.throttled == 0
    assert backend.breaker.state is State.CLOSED


async def test_throttling_that_does_not_end_fails_the_run_after_bounded_retries(
    apiserver: ApiServerDouble, backend: KubernetesBackend, start_run: Any
) -> None:
    apiserver.throttled = 10**6
    outcome = await (await start_run("true")).outcome()
    assert outcome.error == (
        "the Kubernetes API refused: 429 Too Many Requests: "
        "Too many requests, please try again later."
    )
    assert 10**6 - apiserver.throttled == 4  # the call and its 3 retries
    assert backend.breaker.state is State.CLOSED


@pytest.fixture
async def tls_apiserver(tmp_path: Path) -> AsyncIterator[ApiServerDouble]:
    double = ApiServerDouble(tls_dir=tmp_path)
    await double.start()
    yield double
    await double.close()


async def test_over_tls_a_rotated_token_is_picked_up_on_the_401(
    tls_apiserver: ApiServerDouble, tmp_path: Path, start_run_with: Any
) -> None:
    kubeconfig = tls_apiserver.kubeconfig(tmp_path / "kubeconfig")
    assert tls_apiserver.url.startswith("https://")
    backend = KubernetesBackend(backend_options(kubeconfig))
    start_run = start_run_with(backend)
    try:
        assert (await (await start_run("echo before")).outcome()).exit_code == 0
        tls_apiserver.rotate_token()  # the old credential expires...
        tls_apiserver.kubeconfig(kubeconfig)  # ...and the exec plugin would hand out this one
        run = await start_run("echo after")
        outcome = await run.outcome()
        assert (outcome.reason, outcome.exit_code) == ("exited", 0), run.completed()
        assert run.lines("stdout") == ["after"]
        assert backend.api.refreshes == 1
    finally:
        await backend.aclose()


def role_without(verb: str, resource: str) -> Rbac:
    documents = list(yaml.safe_load_all(ROLE_FILE.read_text()))
    for d in documents:
        if d and d["kind"] == "Role":
            for rule in d["rules"]:
                if resource in rule["resources"]:
                    rule["verbs"] = [v for v in rule["verbs"] if v != verb]
    return Rbac(documents)


def test_the_deployed_role_grants_what_websocket_exec_needs() -> None:
    rbac = Rbac.load()
    assert rbac.denial("rdev-workspaces", ["get", "create"], "pods/exec", "p") is None
    for verb in ("create", "get", "list", "delete", "patch"):
        assert rbac.denial("rdev-workspaces", [verb], "pods", "p") is None, verb


async def test_a_role_without_create_on_pods_exec_fails_every_command(
    tmp_path: Path, start_run_with: Any
) -> None:
    double = ApiServerDouble(rbac=role_without("create", "pods/exec"))
    await double.start()
    backend = KubernetesBackend(backend_options(double.kubeconfig(tmp_path / "kubeconfig")))
    try:
        outcome = await (await start_run_with(backend)("true")).outcome()
        assert outcome.error == (
            'the Kubernetes API refused the exec: 403 Forbidden: pods "'
            + next(iter(double.pods))[1]
            + '" is forbidden: User "system:serviceaccount:rdev:rdev-executor" cannot create '
            'resource "pods" with subresource "exec" in API group "" in the namespace '
            '"rdev-workspaces"'
        )
    finally:
        await backend.aclose()
        await double.close()
