"""The `rdev` CLI as a user runs it, against the whole system over real HTTP."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from rdev_common.broker import free_port
from tests.cli.support import PROJECT, RUN_TIMEOUT_S, as_json, rdev_cli
from tests.support import BIN, RdevSystem, service_pids, wait_for

pytestmark = pytest.mark.e2e


def command_state(rdev: RdevSystem, command_id: str) -> dict[str, Any]:
    with rdev.client() as client:
        response = client.get(f"/commands/{command_id}")
    assert response.status_code == 200, response.text
    return dict(response.json()["data"])


def find_run(rdev: RdevSystem, marker: str) -> str | None:
    with rdev.client() as client:
        rows = client.get(f"/projects/{PROJECT}/commands").json()["data"]
    return next((row["id"] for row in rows if marker in row["command"]), None)


def test_run_returns_the_remote_exit_code_and_keeps_streams_apart(
    cli_env: dict[str, str], project: str
) -> None:
    result = rdev_cli(
        cli_env, "run", "-p", project, "--", "echo out1; echo err1 >&2; echo out2; exit 3"
    )
    assert result.returncode == 3, result.stderr
    assert result.stdout == "out1\nout2\n"
    assert result.stderr == "err1\n"
    assert rdev_cli(cli_env, "run", "-p", project, "--", "true").returncode == 0
    killed = rdev_cli(cli_env, "run", "-p", project, "--", "kill -TERM $$")
    assert killed.returncode == 128 + signal.SIGTERM


def started_run(
    cli_env: dict[str, str], project: str, marker: str, then: str
) -> subprocess.Popen[str]:
    """`rdev run` of `echo <marker>; <then>`, returned once the marker came back."""
    proc = subprocess.Popen(
        [str(BIN / "rdev"), "run", "-p", project, "--", f"echo {marker}; {then}"],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == marker
    except BaseException:
        proc.kill()
        raise
    return proc


def test_ctrl_c_cancels_the_remote_run(
    rdev: RdevSystem, cli_env: dict[str, str], project: str
) -> None:
    marker = f"started-{uuid.uuid4().hex}"
    proc = started_run(cli_env, project, marker, "sleep 60")
    try:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode >= 128, err
    command_id = find_run(rdev, marker)
    assert command_id, "the run is not in the project's history"
    state = command_state(rdev, command_id)
    assert (state["status"], state["reason"]) == ("completed", "cancelled")
    assert "cancelling" in err


def test_detach_then_attach_and_logs(cli_env: dict[str, str], project: str) -> None:
    detached = rdev_cli(cli_env, "run", "-d", "-p", project, "--", "echo hi; echo ho >&2; exit 4")
    assert detached.returncode == 0, detached.stderr
    command_id = detached.stdout.strip()
    attached = rdev_cli(cli_env, "attach", command_id)
    assert (attached.returncode, attached.stdout, attached.stderr) == (4, "hi\n", "ho\n")
    text = rdev_cli(cli_env, "logs", command_id)
    assert text.returncode == 0
    assert sorted(text.stdout.splitlines()) == ["hi", "ho"]
    lines = [
        json.loads(line)
        for line in rdev_cli(cli_env, "logs", command_id, "--json").stdout.splitlines()
    ]
    output = [line for line in lines if "line" in line]
    assert sorted((o["stream"], o["line"]) for o in output) == [("stderr", "ho"), ("stdout", "hi")]
    assert lines[-1]["complete"]["exit_code"] == 4


def test_json_output_parses(cli_env: dict[str, str], project: str) -> None:
    projects = as_json(rdev_cli(cli_env, "projects", "list", "--json"))
    assert project in [p["id"] for p in projects]
    assert as_json(rdev_cli(cli_env, "projects", "show", project, "--json"))["id"] == project
    created = as_json(rdev_cli(cli_env, "run", "-d", "--json", "-p", project, "--", "echo json"))
    assert created["status"] == "queued"
    assert rdev_cli(cli_env, "attach", created["id"]).returncode == 0
    history = as_json(rdev_cli(cli_env, "history", "-p", project, "--json", "--limit", "5"))
    assert history[0]["id"] == created["id"]
    assert history[0]["status"] == "completed" and history[0]["exit_code"] == 0
    table = rdev_cli(cli_env, "history", "-p", project, "--limit", "5")
    assert table.returncode == 0 and created["id"] in table.stdout


def test_ps_shows_a_running_command_and_cancel_stops_it(
    rdev: RdevSystem, cli_env: dict[str, str], project: str
) -> None:
    command_id = as_json(rdev_cli(cli_env, "run", "-d", "--json", "-p", project, "--", "sleep 60"))[
        "id"
    ]
    running = as_json(rdev_cli(cli_env, "ps", "-p", project, "--json"))
    assert command_id in [row["id"] for row in running]
    assert rdev_cli(cli_env, "cancel", command_id).returncode == 0
    final = wait_for(
        lambda: (s := command_state(rdev, command_id))["status"] == "completed" and s,
        60,
        "the cancelled command did not complete",
    )
    assert final["reason"] == "cancelled"
    assert command_id not in [
        row["id"] for row in as_json(rdev_cli(cli_env, "ps", "-p", project, "--json"))
    ]


def test_errors_are_clear_and_exit_non_zero(cli_env: dict[str, str], project: str) -> None:
    bad_key = rdev_cli({**cli_env, "RDEV_API_KEY": "rdev_wrong"}, "projects", "list")
    assert bad_key.returncode == 4
    assert "not accepted" in bad_key.stderr and "Traceback" not in bad_key.stderr
    unknown = rdev_cli(cli_env, "projects", "show", "no-such-project")
    assert unknown.returncode == 5 and "not found" in unknown.stderr
    run_unknown = rdev_cli(cli_env, "run", "-p", "no-such-project", "--", "true")
    assert run_unknown.returncode == 255 and "not found" in run_unknown.stderr
    down = {**cli_env, "RDEV_URL": f"http://127.0.0.1:{free_port()}"}
    unreachable = rdev_cli(down, "history", "-p", project)
    assert unreachable.returncode == 3 and "cannot reach rdev" in unreachable.stderr
    assert rdev_cli(down, "run", "-p", project, "--", "true").returncode == 255


def test_login_stores_url_and_key_owner_only(
    rdev: RdevSystem, cli_env: dict[str, str], project: str
) -> None:
    env = {k: v for k, v in cli_env.items() if k not in ("RDEV_URL", "RDEV_API_KEY")}
    refused = rdev_cli(env, "login", "--url", rdev.base_url, "--api-key", "rdev_wrong")
    assert refused.returncode == 4
    assert not Path(env["RDEV_CONFIG"]).exists()
    ok = rdev_cli(env, "login", "--url", rdev.base_url, "--api-key", rdev.api_key)
    assert ok.returncode == 0, ok.stderr
    path = Path(env["RDEV_CONFIG"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert rdev.api_key in path.read_text()
    assert project in [p["id"] for p in as_json(rdev_cli(env, "projects", "list", "--json"))]
    assert rdev_cli(env, "logout").returncode == 0 and not path.exists()


def test_completion_script_is_offered(cli_env: dict[str, str]) -> None:
    result = rdev_cli({**cli_env, "SHELL": "/bin/bash"}, "--show-completion", "bash")
    assert result.returncode == 0, result.stderr
    assert "complete" in result.stdout and "rdev" in result.stdout


def test_server_health_is_unaffected(rdev: RdevSystem) -> None:
    assert httpx.get(f"{rdev.base_url}/healthz").status_code == 200


def test_run_resumes_through_an_api_restart_without_losing_a_line(
    rdev: RdevSystem, cli_env: dict[str, str], project: str
) -> None:
    marker = f"restart-{uuid.uuid4().hex}"
    proc = started_run(cli_env, project, marker, "sleep 3; seq 1 2000; exit 7")
    try:
        (api,) = service_pids(rdev, "api")
        os.kill(api, signal.SIGKILL)  # `rdev up` starts it again
        out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
        wait_for(lambda: _ready(rdev), 60, "the api did not come back")
    assert proc.returncode == 7, err
    assert out.splitlines() == [str(i) for i in range(1, 2001)]


def _ready(rdev: RdevSystem) -> bool:
    try:
        return httpx.get(f"{rdev.base_url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
