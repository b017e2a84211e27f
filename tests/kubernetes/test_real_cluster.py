"""Tests that run against the double here and against a real cluster when one is given.

    RDEV_K8S_TEST_KUBECONFIG=~/.kube/config make test-k8s-cluster

They touch nothing but the backend and the commands' own output, so they hold on any
cluster; the double-only scenarios live in the other files. On a real cluster they
also prove what the double cannot: the runtime closing stdin when rdev goes away,
cgroup OOM kills, the kubelet's idle timeout and a load balancer's in between
(set RDEV_K8S_TEST_SILENT_S above those, e.g. 360 for a hardened kubelet's 5 min).
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.kubernetes.conftest import REAL_KUBECONFIG, ProjectSecrets

SILENT_S = int(os.environ.get("RDEV_K8S_TEST_SILENT_S", "3"))


async def test_output_exit_code_and_environment_over_stdin(
    start_run: Any, project_secrets: ProjectSecrets
) -> None:
    project_secrets.values["demo"] = {"TOKEN": "s3cret-value-of-some-length"}
    run = await start_run(
        'echo out; echo err >&2; printf %s "$TOKEN" | wc -c; echo "$GREETING"; exit 3',
        env={"GREETING": 'it\'s a "quoted"\nvalue'},
    )
    outcome = await run.outcome()
    assert (outcome.reason, outcome.exit_code) == ("exited", 3), run.completed()
    assert [line.strip() for line in run.lines("stdout")] == [
        "out",
        "27",
        'it\'s a "quoted"',
        "value",
    ]
    assert run.lines("stderr") == ["err"]


async def test_a_silent_command_is_not_cut_off(start_run: Any) -> None:
    run = await start_run(f"sleep {SILENT_S}; echo still here")
    outcome = await run.outcome()
    assert (outcome.reason, outcome.exit_code) == ("exited", 0), run.completed()
    assert run.lines("stdout") == ["still here"]


async def test_cancel_ends_the_whole_process_group(start_run: Any) -> None:
    run = await start_run("echo $$ > .pgid; sleep 300 & sleep 300 & echo started; wait")
    await run.wait_for_output("started")
    run.control.cancelled.set()
    outcome = await run.outcome()
    assert (outcome.reason, outcome.exit_code) == ("cancelled", 143), run.completed()
    check = await start_run(
        "g=$(cat .pgid); for _ in $(seq 100); do "
        'kill -0 -"$g" 2>/dev/null || { echo gone; exit 0; }; sleep 0.1; done; echo alive'
    )
    assert (await check.outcome()).exit_code == 0, check.completed()
    assert check.lines("stdout") == ["gone"], "processes of the cancelled command survived"


async def test_a_pod_no_node_can_take_fails_fast_with_the_schedulers_reason(
    start_run: Any,
) -> None:
    run = await start_run("true", spec={"node_selector": {"rdev.dev/no-such-pool": "x"}})
    outcome = await run.outcome()
    assert outcome.reason == "error"
    assert "cannot be scheduled" in (outcome.error or ""), outcome.error


@pytest.mark.skipif(REAL_KUBECONFIG is None, reason="needs a kernel OOM kill in a real cgroup")
async def test_a_command_over_the_memory_limit_is_reported_as_killed_for_memory(
    start_run: Any,
) -> None:
    limit = {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}}
    run = await start_run(
        "head -c 512m /dev/zero | tail > /dev/null", spec={"resources": limit}, project="oom"
    )
    outcome = await run.outcome()
    assert outcome.reason == "error", run.completed()
    assert "was killed for memory (OOMKilled at its memory limit of 64Mi)" in (outcome.error or "")
