"""Run states in one vocabulary, queued runs, cancel in the queue and run again: the API
and the CLI against a whole system whose one executor slot makes runs queue."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.support import RUN_TIMEOUT_S, rdev_cli
from tests.support import BIN, RdevSystem, start_system, wait_for

pytestmark = pytest.mark.e2e

PROJECT = "states"


@pytest.fixture(scope="module")
def one_slot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RdevSystem]:
    """A system with one executor slot: a second run waits in the queue."""
    system_dir = tmp_path_factory.mktemp("rdev-one-slot")
    for system in start_system(system_dir, RDEV_EXECUTOR_CONCURRENCY="1"):
        system.create_project(PROJECT)
        (system.data_dir / "workspaces" / PROJECT / "sub").mkdir(exist_ok=True)
        yield system


@pytest.fixture
def env(one_slot: RdevSystem, tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RDEV_")}
    clean.update(
        {
            "RDEV_URL": one_slot.base_url,
            "RDEV_API_KEY": one_slot.api_key,
            "RDEV_CONFIG": str(tmp_path / "config.toml"),
            "RDEV_DATA_DIR": str(tmp_path / "no-data-dir"),
            "COLUMNS": "200",
        }
    )
    return clean


def submit(system: RdevSystem, command: str, **fields: Any) -> dict[str, Any]:
    with system.client() as client:
        response = client.post(f"/projects/{PROJECT}/shell", json={"command": command, **fields})
    assert response.status_code == 202, response.text
    return dict(response.json()["data"])


def get(system: RdevSystem, command_id: str) -> dict[str, Any]:
    with system.client() as client:
        response = client.get(f"/commands/{command_id}")
    assert response.status_code == 200, response.text
    return dict(response.json()["data"])


def ended(system: RdevSystem, command_id: str) -> dict[str, Any]:
    return dict(
        wait_for(
            lambda: (s := get(system, command_id))["status"] == "completed" and s,
            RUN_TIMEOUT_S,
            f"{command_id} did not complete",
            interval=0.2,
        )
    )


def cancel(system: RdevSystem, command_id: str) -> httpx.Response:
    with system.client() as client:
        return client.post(f"/commands/{command_id}/cancel")


def test_every_ending_has_its_own_state_and_words(one_slot: RdevSystem) -> None:
    ok = submit(one_slot, "true")
    failed = submit(one_slot, "exit 3")
    timed_out = submit(one_slot, "sleep 30", timeout_s=1)
    states = {c["id"]: ended(one_slot, c["id"]) for c in (ok, failed, timed_out)}
    assert (states[ok["id"]]["state"], states[ok["id"]]["state_label"]) == (
        "succeeded",
        "succeeded",
    )
    assert (states[failed["id"]]["state"], states[failed["id"]]["state_label"]) == (
        "failed",
        "failed (exit 3)",
    )
    assert (states[timed_out["id"]]["state"], states[timed_out["id"]]["state_label"]) == (
        "timed_out",
        "timed out",
    )
    with one_slot.client() as client:
        only_failed = client.get(f"/projects/{PROJECT}/commands", params={"status": "failed"})
        spelled = client.get(f"/projects/{PROJECT}/commands", params={"status": "timed out"})
        refused = client.get(f"/projects/{PROJECT}/commands", params={"status": "exited"})
    assert only_failed.status_code == 200, only_failed.text
    assert {c["state"] for c in only_failed.json()["data"]} == {"failed"}
    assert failed["id"] in [c["id"] for c in only_failed.json()["data"]]
    assert [c["id"] for c in spelled.json()["data"]] == [timed_out["id"]]
    assert refused.status_code == 422
    message = refused.json()["error"]["message"]
    assert "succeeded, failed, timed out, cancelled, lost" in message
    assert "^" not in message and "pattern" not in message


def blocker(system: RdevSystem) -> dict[str, Any]:
    """A run holding the one executor slot, returned once it runs."""
    running = submit(system, f"echo blocker-{uuid.uuid4().hex}; sleep 120")
    wait_for(
        lambda: get(system, running["id"])["status"] == "running",
        RUN_TIMEOUT_S,
        "the blocking run did not start",
        interval=0.2,
    )
    return running


def test_cancelling_a_queued_run_ends_it_at_once_and_it_never_starts(
    one_slot: RdevSystem,
) -> None:
    hold = blocker(one_slot)
    waiting = submit(one_slot, "echo should-never-run")
    try:
        response = cancel(one_slot, waiting["id"])
        assert response.status_code == 202, response.text
        # Answered with the run already ended: no executor slot had to free up.
        answered = response.json()["data"]
        assert (answered["status"], answered["state"]) == ("completed", "cancelled")
        assert answered["exit_code"] == 143
        assert get(one_slot, hold["id"])["status"] == "running"
    finally:
        cancel(one_slot, hold["id"])
    ended(one_slot, hold["id"])
    # The executor takes the cancelled command from its queue and must not start it.
    later = submit(one_slot, "true")
    ended(one_slot, later["id"])
    final = get(one_slot, waiting["id"])
    assert final["started_at"] is None and final["state"] == "cancelled"
    with one_slot.client() as client:
        log = client.get(f"/commands/{waiting['id']}/output").text
    assert "should-never-run" not in log


def sse_events(system: RdevSystem, command_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event, data) of a run's event stream as an SSE client reads it."""
    with (
        httpx.Client(base_url=system.base_url, headers=system.headers, timeout=None) as client,
        client.stream(
            "GET", f"/projects/{PROJECT}/events", params={"stream_id": command_id}
        ) as response,
    ):
        name = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                yield name, json.loads(line[len("data: ") :])
                if name == "complete":
                    return


def test_a_queued_run_streams_its_position(one_slot: RdevSystem) -> None:
    hold = blocker(one_slot)
    first = submit(one_slot, "echo first")
    second = submit(one_slot, "echo second")
    seen: list[dict[str, Any]] = []
    try:
        for name, data in sse_events(one_slot, second["id"]):
            if name == "queued":
                seen.append(data)
                if data["position"] == 2:
                    cancel(one_slot, hold["id"])
    finally:
        cancel(one_slot, hold["id"])
    positions = [d["position"] for d in seen]
    assert positions[0] == 2, seen
    assert positions == sorted(positions, reverse=True), "the queue only moves forward"
    assert all(d["waiting_for"] == "waiting for an executor" for d in seen)
    assert all(d["command_id"] == second["id"] for d in seen)
    ended(one_slot, first["id"])
    assert get(one_slot, second["id"])["state"] == "succeeded"


def test_run_again_repeats_command_priority_timeout_env_and_cwd(
    one_slot: RdevSystem, env: dict[str, str]
) -> None:
    first = submit(
        one_slot,
        'echo "$GREETING from $(basename "$PWD")"',
        priority="high",
        timeout_s=50,
        env={"GREETING": "hello"},
        cwd="sub",
    )
    ended(one_slot, first["id"])
    with one_slot.client() as client:
        response = client.post(f"/commands/{first['id']}/rerun")
    assert response.status_code == 202, response.text
    again = response.json()["data"]
    assert again["id"] != first["id"]
    assert (again["command"], again["priority"], again["timeout_s"]) == (
        first["command"],
        "high",
        50,
    )
    ended(one_slot, again["id"])
    with one_slot.client() as client:
        assert client.get(f"/commands/{again['id']}/output").text == "hello from sub\n"

    cli = rdev_cli(env, "rerun", again["id"])
    assert (cli.returncode, cli.stdout) == (0, "hello from sub\n"), cli.stderr
    missing = rdev_cli(env, "rerun", "no-such-command")
    assert missing.returncode == 255 and "not found" in missing.stderr


def test_cli_history_filters_by_the_states_it_shows(
    one_slot: RdevSystem, env: dict[str, str]
) -> None:
    failed = ended(one_slot, submit(one_slot, "exit 5")["id"])
    table = rdev_cli(env, "history", "-p", PROJECT, "--status", "failed", "--limit", "50")
    assert table.returncode == 0, table.stderr
    rows = table.stdout.splitlines()
    assert rows[0].split()[:3] == ["ID", "PROJECT", "STATE"]
    assert any(r.startswith(failed["id"]) and "failed (exit 5)" in r for r in rows[1:])
    assert all("failed (exit" in r for r in rows[1:]), rows
    # Not a terminal: full values, one row per line, no colour codes.
    assert "\x1b[" not in table.stdout and "…" not in table.stdout
    assert any(failed["requested_at"] in r for r in rows[1:]), "times in full, not relative"

    wrong = rdev_cli(env, "history", "-p", PROJECT, "--status", "exited")
    assert wrong.returncode == 1
    assert wrong.stderr.count("\n") == 1, wrong.stderr
    assert "succeeded, failed, timed out, cancelled, lost" in wrong.stderr
    assert "^(" not in wrong.stderr and "422" not in wrong.stderr


def test_cli_run_with_env_cwd_timeout_and_priority(env: dict[str, str]) -> None:
    result = rdev_cli(
        env,
        "run",
        "-p",
        PROJECT,
        "--env",
        "A=1",
        "-e",
        "B=two words",
        "--cwd",
        "sub",
        "--priority",
        "low",
        "--timeout",
        "1",
        "--",
        'echo "$A $B $(basename "$PWD")"; sleep 30',
    )
    assert result.stdout == "1 two words sub\n", result.stderr
    assert result.returncode == 124, "the timeout ended it"


def run_with_stdin(env: dict[str, str], stdin: Any, data: bytes | None = None) -> Any:
    return subprocess.run(
        [str(BIN / "rdev"), "run", "-p", PROJECT, "--", "echo ran; cat"],
        env=env,
        stdin=stdin,
        input=data,
        capture_output=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


def test_cli_run_forwards_input_as_ssh_does(env: dict[str, str], tmp_path: Path) -> None:
    piped = run_with_stdin(env, None, b"hello\n")
    assert (piped.returncode, piped.stdout) == (0, b"ran\nhello\n"), piped.stderr
    with open(os.devnull, "rb") as null:
        assert run_with_stdin(env, null).stdout == b"ran\n"
    empty_pipe = run_with_stdin(env, None, b"")
    assert (empty_pipe.returncode, empty_pipe.stdout) == (0, b"ran\n")
    (tmp_path / "input.txt").write_text("data\n")
    with (tmp_path / "input.txt").open("rb") as file:
        from_file = run_with_stdin(env, file)
    assert (from_file.returncode, from_file.stdout) == (0, b"ran\ndata\n")


def test_cli_errors_once_in_words_with_a_suggestion(env: dict[str, str]) -> None:
    typo = rdev_cli(env, "run", "-p", PROJECT[:-1], "--", "true")
    assert typo.returncode == 255
    assert typo.stderr.count("rdev:") == 1, typo.stderr
    assert f"project '{PROJECT[:-1]}' not found" in typo.stderr
    assert f"did you mean '{PROJECT}'?" in typo.stderr
    assert "404" not in typo.stderr and "(not_found)" not in typo.stderr
    show = rdev_cli(env, "projects", "show", "nope")
    assert show.returncode == 5
    assert show.stderr.startswith("rdev: project 'nope' not found"), show.stderr
    assert f"known projects: {PROJECT}" in show.stderr


def test_cli_version_and_help_in_words(env: dict[str, str]) -> None:
    version = rdev_cli(env, "--version")
    assert version.returncode == 0 and version.stdout.startswith("rdev ")
    for args in (["run", "--help"], ["history", "--help"], ["events", "replay", "--help"]):
        shown = rdev_cli(env, *args)
        assert shown.returncode == 0, shown.stderr
        assert "<bool>" not in shown.stdout and "<list[str]>" not in shown.stdout, shown.stdout
        assert "<str>" not in shown.stdout and "<float>" not in shown.stdout
    assert "SECONDS" in rdev_cli(env, "run", "--help").stdout


def test_cli_completes_project_and_command_ids(one_slot: RdevSystem, env: dict[str, str]) -> None:
    done = submit(one_slot, "true")
    ended(one_slot, done["id"])

    def complete(words: str) -> list[str]:
        result = subprocess.run(
            [str(BIN / "rdev")],
            env={
                **env,
                "_RDEV_COMPLETE": "complete_bash",
                "COMP_WORDS": words,
                "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
            },
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )
        return result.stdout.split()

    assert PROJECT in complete("rdev history -p st")
    assert done["id"] in complete(f"rdev logs {done['id'][:20]}")


def test_status_and_events_find_the_system_rdev_up_started(
    one_slot: RdevSystem, env: dict[str, str]
) -> None:
    here = {**env, "RDEV_DATA_DIR": str(one_slot.data_dir)}
    here.pop("RDEV_NATS_URL", None)
    status = rdev_cli(here, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    state = json.loads((one_slot.data_dir / "up.json").read_text())
    assert f"broker   {state['nats_url']}" in status.stdout
    assert state["nats_url"].startswith("nats://")
    rows = {line.split()[0]: line.split()[1] for line in status.stdout.splitlines()[4:] if line}
    assert rows == dict.fromkeys(("api", "executor", "webhooks", "audit"), "ready"), status.stdout
    info = rdev_cli(here, "events", "info")
    assert info.returncode == 0, info.stderr
    assert "RDEV_RUNS" in info.stdout
    elsewhere = rdev_cli(env, "events", "info")
    assert elsewhere.returncode != 0 and "rdev up" in elsewhere.stderr


def in_terminal(env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run `rdev args` with a pseudo-terminal as stdin, stdout and stderr."""
    import pty
    import select

    main_fd, child_fd = pty.openpty()
    proc = subprocess.Popen(
        [str(BIN / "rdev"), *args],
        env={**env, "TERM": "xterm-256color", "COLUMNS": "200"},
        stdin=child_fd,
        stdout=child_fd,
        stderr=child_fd,
        close_fds=True,
    )
    os.close(child_fd)
    chunks: list[bytes] = []
    try:
        while True:
            ready, _, _ = select.select([main_fd], [], [], RUN_TIMEOUT_S)
            if not ready:
                raise AssertionError(f"rdev {args} printed nothing for {RUN_TIMEOUT_S} s")
            try:
                chunk = os.read(main_fd, 65536)
            except OSError:  # EIO: the terminal's other side closed
                break
            if not chunk:
                break
            chunks.append(chunk)
        code = proc.wait(timeout=RUN_TIMEOUT_S)
    finally:
        os.close(main_fd)
        if proc.poll() is None:
            proc.kill()
    return code, b"".join(chunks).decode(errors="replace")


def test_on_a_terminal_states_are_coloured_and_times_relative(env: dict[str, str]) -> None:
    code, shown = in_terminal(env, "run", "-p", PROJECT, "--", "echo hi; exit 3")
    assert code == 3, shown
    assert "hi" in shown
    assert "failed (exit 3) after" in shown, "the run's last line says how it ended"
    code, table = in_terminal(env, "history", "-p", PROJECT, "--limit", "5")
    assert code == 0, table
    assert "ago" in table, "times are relative on a terminal"
    assert "\x1b[" in table, "states are coloured on a terminal"
    assert "failed (exit 3)" in table
