"""Commands through the Runner into a workspace pod over the exec websocket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.kubernetes.apiserver_double import ApiServerDouble
from tests.kubernetes.conftest import NAMESPACE, group_members, process_group_gone


async def test_stdout_and_stderr_stay_apart_and_the_exit_code_comes_from_the_status(
    start_run: Any,
) -> None:
    run = await start_run("echo out1; echo err1 >&2; echo out2; echo err2 >&2; exit 7")
    outcome = await run.outcome()
    assert (outcome.reason, outcome.exit_code) == ("exited", 7), run.completed()
    assert run.lines("stdout") == ["out1", "out2"]
    assert run.lines("stderr") == ["err1", "err2"]
    assert run.completed()["exit_code"] == 7


async def test_env_and_cwd_reach_the_command(start_run: Any, tmp_path: Path) -> None:
    (tmp_path / "workspace" / "sub").mkdir()
    run = await start_run('echo "$GREETING"; pwd', env={"GREETING": "hello there"}, cwd="sub")
    assert (await run.outcome()).exit_code == 0
    assert run.lines("stdout") == ["hello there", str(tmp_path / "workspace" / "sub")]


async def test_cancel_kills_the_remote_process_group(start_run: Any, tmp_path: Path) -> None:
    pidfile = tmp_path / "workspace" / "pgid"
    run = await start_run(f"echo $$ > {pidfile}; sleep 300 & sleep 300 & echo started; wait")
    await run.wait_for_output("started")
    pgid = int(pidfile.read_text())
    assert group_members(pgid)
    run.control.cancelled.set()
    outcome = await run.outcome()
    assert (outcome.reason, outcome.exit_code) == ("cancelled", 143), run.completed()
    assert await process_group_gone(pgid), "processes of the cancelled command survived"
    assert not Path(f"/tmp/rdev-{run.request.command_id}.pid").exists()


async def test_timeout_kills_a_command_that_ignores_sigterm(start_run: Any, tmp_path: Path) -> None:
    pidfile = tmp_path / "workspace" / "pgid"
    run = await start_run(
        f"trap '' TERM; echo $$ > {pidfile}; echo started; sleep 300 & wait", timeout_s=1
    )
    outcome = await run.outcome()
    assert (outcome.reason, outcome.exit_code) == ("timeout", 124), run.completed()
    assert await process_group_gone(int(pidfile.read_text()))


async def test_background_children_do_not_outlive_the_command(
    start_run: Any, tmp_path: Path
) -> None:
    pidfile = tmp_path / "workspace" / "pgid"
    run = await start_run(f"echo $$ > {pidfile}; sleep 300 > /dev/null 2>&1 & echo done")
    outcome = await run.outcome()
    assert (outcome.reason, outcome.exit_code) == ("exited", 0)
    assert await process_group_gone(int(pidfile.read_text()))


async def test_pod_deleted_mid_run_ends_the_run_with_an_error(
    apiserver: ApiServerDouble, start_run: Any, tmp_path: Path
) -> None:
    pidfile = tmp_path / "workspace" / "pgid"
    run = await start_run(f"echo $$ > {pidfile}; echo started; sleep 300")
    await run.wait_for_output("started")
    ((ns, name),) = apiserver.pods
    await apiserver_delete(apiserver, ns, name)
    outcome = await run.outcome()
    assert (outcome.reason, outcome.exit_code) == ("error", 255), run.completed()
    assert outcome.error == f"workspace pod {name} was deleted while the command ran"
    assert run.completed()["error"] == outcome.error
    assert await process_group_gone(int(pidfile.read_text()))


async def test_pod_evicted_mid_run_ends_the_run_with_an_error(
    apiserver: ApiServerDouble, start_run: Any
) -> None:
    run = await start_run("echo started; sleep 300")
    await run.wait_for_output("started")
    ((ns, name),) = apiserver.pods
    apiserver.evict(ns, name)
    outcome = await run.outcome()
    assert (outcome.reason, outcome.exit_code) == ("error", 255)
    assert outcome.error == (
        f"workspace pod {name} was evicted: The node was low on resource: memory. "
        "while the command ran"
    )


async def test_a_deleted_pod_is_recreated_for_the_next_command(
    apiserver: ApiServerDouble, start_run: Any
) -> None:
    await (await start_run("true")).outcome()
    ((ns, name),) = apiserver.pods
    await apiserver_delete(apiserver, ns, name)
    run = await start_run("echo again")
    assert (await run.outcome()).exit_code == 0, run.completed()
    assert run.lines("stdout") == ["again"]
    assert apiserver.requests[f"POST /api/v1/namespaces/{NAMESPACE}/pods"] == 2


async def apiserver_delete(apiserver: ApiServerDouble, ns: str, name: str) -> None:
    """Delete the pod through the REST API, as `kubectl delete pod` would."""
    import aiohttp

    headers = {"Authorization": f"Bearer {apiserver.token}"}
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        session.delete(
            f"{apiserver.url}/api/v1/namespaces/{ns}/pods/{name}", ssl=apiserver.client_ssl()
        ) as response,
    ):
        assert response.status == 200, await response.text()
