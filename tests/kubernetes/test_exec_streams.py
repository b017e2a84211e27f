"""Exec streams as a real cluster treats them: idle closes, half-open connections,
audit-logged URIs, and handshakes refused with a Status body."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from rdev_common.circuit_breaker import State
from rdev_executor.adapters.k8s_api import ExecRefused, is_api_failure
from rdev_executor.adapters.kubernetes_backend import KubernetesBackend
from tests.kubernetes.apiserver_double import ApiServerDouble
from tests.kubernetes.conftest import ProjectSecrets, process_group_gone

SECRET = "hunter2-not-for-the-audit-log"
ENV_SECRET = "per-command-value-also-private"


async def test_a_silent_command_outlives_the_idle_timeout_of_the_exec_stream(
    apiserver: ApiServerDouble, start_run: Any
) -> None:
    apiserver.exec_idle_timeout_s = 1.5  # streamingConnectionIdleTimeout, shortened
    run = await start_run("sleep 4; echo finished")
    outcome = await run.outcome()
    assert (outcome.reason, outcome.exit_code) == ("exited", 0), run.completed()
    assert run.lines("stdout") == ["finished"]


async def test_a_half_open_stream_ends_the_run_with_its_reason_and_kills_the_command(
    apiserver: ApiServerDouble, start_run: Any, tmp_path: Path
) -> None:
    pidfile = tmp_path / "workspace" / "pgid"
    run = await start_run(f"echo $$ > {pidfile}; echo started; sleep 300")
    await run.wait_for_output("started")
    apiserver.freeze_streams()  # no data, no pong, no close: a dead NAT entry
    outcome = await asyncio.wait_for(run.outcome(), 30)
    assert (outcome.reason, outcome.exit_code) == ("error", 255), run.completed()
    ((_, name),) = apiserver.pods
    assert outcome.error == (
        f"the exec stream to workspace pod {name} stopped answering pings; the command was killed"
    )
    assert await process_group_gone(int(pidfile.read_text()))


async def test_a_dropped_stream_ends_the_run_with_its_reason_and_nothing_runs_on(
    apiserver: ApiServerDouble, start_run: Any, tmp_path: Path
) -> None:
    pidfile = tmp_path / "workspace" / "pgid"
    run = await start_run(f"echo $$ > {pidfile}; echo started; sleep 300")
    await run.wait_for_output("started")
    apiserver.drop_streams()  # the API server restarts
    outcome = await asyncio.wait_for(run.outcome(), 30)
    ((_, name),) = apiserver.pods
    assert (outcome.reason, outcome.exit_code) == ("error", 255), run.completed()
    assert outcome.error == (
        f"lost the command in workspace pod {name}: the exec stream closed early"
    )
    assert await process_group_gone(int(pidfile.read_text()))


async def test_no_secret_reaches_a_request_uri_or_an_event(
    apiserver: ApiServerDouble, start_run: Any, project_secrets: ProjectSecrets
) -> None:
    project_secrets.values["demo"] = {"API_TOKEN": SECRET}
    run = await start_run(
        'printf %s "$API_TOKEN" | wc -c; printf %s "$PLAIN" | wc -c; echo "$MULTI"',
        env={"PLAIN": ENV_SECRET, "MULTI": "line one\nit's 'quoted' $HOME `x`"},
    )
    outcome = await run.outcome()
    assert (outcome.reason, outcome.exit_code) == ("exited", 0), run.completed()
    stdout = [line.strip() for line in run.lines("stdout")]
    assert stdout == [str(len(SECRET)), str(len(ENV_SECRET)), "line one", "it's 'quoted' $HOME `x`"]

    # A refused handshake whose Status message echoes a secret (a proxy quoting
    # the request): the run's error is redacted.
    ((_, name),) = apiserver.pods
    message = f"error dialing backend: proxy rejected API_TOKEN={SECRET}"
    apiserver.exec_refusals[name] = (500, "InternalError", message)
    failed = await start_run("true", env={"PLAIN": ENV_SECRET})
    outcome = await failed.outcome()
    assert outcome.reason == "error"
    assert "proxy rejected API_TOKEN=[REDACTED]" in (outcome.error or ""), outcome.error

    assert apiserver.uris, "the double logged no request"
    for uri in apiserver.uris:
        assert SECRET not in uri and ENV_SECRET not in uri, uri
    for event in [*run.events, *failed.events]:
        text = json.dumps(event.model_dump(mode="json"))
        assert SECRET not in text and ENV_SECRET not in text, text


async def test_one_bad_node_fails_its_project_but_not_the_breaker_for_everyone(
    apiserver: ApiServerDouble, backend: KubernetesBackend, start_run: Any
) -> None:
    assert (await (await start_run("true", project="unlucky")).outcome()).exit_code == 0
    ((_, name),) = apiserver.pods
    refusal = "error dialing backend: dial tcp 10.0.1.1:10250: connect: connection refused"
    apiserver.exec_refusals[name] = (500, "InternalError", refusal)
    for _ in range(4):  # past the breaker's failure_threshold of 3
        outcome = await (await start_run("true", project="unlucky")).outcome()
        assert (outcome.reason, outcome.exit_code) == ("error", 255)
        assert outcome.error == (
            f"the pod's node or container refused the exec: 500 InternalError: {refusal}"
        )
    assert backend.breaker.state is State.CLOSED
    run = await start_run("echo fine", project="lucky")
    outcome = await run.outcome()
    assert (outcome.reason, outcome.exit_code) == ("exited", 0), run.completed()
    assert run.lines("stdout") == ["fine"]


async def test_a_restarting_container_refusing_one_exec_costs_the_run_nothing(
    apiserver: ApiServerDouble, start_run: Any
) -> None:
    assert (await (await start_run("true")).outcome()).exit_code == 0
    ((_, name),) = apiserver.pods
    refusal = 'unable to upgrade connection: container not found ("workspace")'
    apiserver.exec_refusals[name] = (500, "InternalError", refusal)
    apiserver.exec_refusals_left[name] = 1
    run = await start_run("echo second try")
    outcome = await run.outcome()
    assert (outcome.reason, outcome.exit_code) == ("exited", 0), run.completed()
    assert run.lines("stdout") == ["second try"]
    assert apiserver.exec_refusals_left[name] == 0


async def test_an_api_server_refusing_exec_is_told_apart_from_a_kubelet(
    apiserver: ApiServerDouble, start_run: Any
) -> None:
    assert (await (await start_run("true")).outcome()).exit_code == 0
    ((_, name),) = apiserver.pods
    apiserver.exec_refusals[name] = (503, "ServiceUnavailable", "etcdserver: request timed out")
    outcome = await (await start_run("true")).outcome()
    assert outcome.error == (
        "the Kubernetes API refused the exec: 503 ServiceUnavailable: etcdserver: request timed out"
    )
    assert is_api_failure(ExecRefused(500, "InternalError", "etcdserver: leader changed", None))
    restarting = 'unable to upgrade connection: container not found ("workspace")'
    assert not is_api_failure(ExecRefused(500, "InternalError", restarting, None))
