"""Cancel and timeout: the whole process tree dies; exactly one completed; exit codes."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import pytest

from tests.e2e.sse_helpers import events_url, read_events, submit
from tests.support import RdevSystem, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def project(system: RdevSystem) -> str:
    system.create_project("exec")
    return "exec"


def state(system: RdevSystem, cid: str) -> dict:
    with system.client() as c:
        return c.get(f"/commands/{cid}").json()["data"]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "\nState:\tZ" not in status.read_text()


def test_cancel_kills_the_whole_process_tree(
    system: RdevSystem, project: str, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    command = (
        f"sh -c 'sleep 300 & echo $! >> {pids}; sleep 300' & echo $! >> {pids}; "
        f"sleep 300 & echo $! >> {pids}; echo started; wait"
    )
    with system.client() as client:
        cid = submit(client, project, command)
        wait_for(
            lambda: pids.exists() and len(pids.read_text().split()) >= 3,
            20,
            "the command did not start its children",
        )
        wait_for(lambda: state(system, cid)["status"] == "running", 10, "not running")
        assert client.post(f"/commands/{cid}/cancel").status_code == 202
        _, events = read_events(client, events_url(project, cid))
    done = events[-1]
    assert done.event == "complete"
    assert done.data["reason"] == "cancelled"
    assert done.data["exit_code"] == 128 + signal.SIGTERM
    children = [int(p) for p in pids.read_text().split()]
    wait_for(
        lambda: not any(alive(p) for p in children),
        10,
        f"processes left behind: {[p for p in children if alive(p)]}",
    )
    assert sum(1 for e in events if e.event == "complete") == 1


def test_a_process_ignoring_sigterm_is_killed_after_the_grace_period(
    system: RdevSystem, project: str
) -> None:
    with system.client() as client:
        cid = submit(client, project, "trap '' TERM; echo ready; sleep 300")
        # "ready" is printed after the trap is installed: wait for it on the stream.
        _, first = read_events(client, events_url(project, cid), limit=2)
        assert first[-1].data["line"] == "ready"
        client.post(f"/commands/{cid}/cancel")
        _, events = read_events(client, events_url(project, cid))
    assert events[-1].data["reason"] == "cancelled"
    assert events[-1].data["exit_code"] == 128 + signal.SIGKILL


def test_a_background_child_holding_the_output_is_killed_2_s_after_the_shell_exits(
    system: RdevSystem, project: str, tmp_path: Path
) -> None:
    """As docs/architecture.md says: the run ends with the shell's exit code, and the
    group (the child keeping stdout open) is killed after the 2 s output grace."""
    pid_file = tmp_path / "child"
    with system.client() as client:
        cid = submit(client, project, f"sleep 300 & echo $! > {pid_file}; echo started; exit 3")
        _, events = read_events(client, events_url(project, cid), timeout=30)
    assert [e.data["line"] for e in events if e.event == "output"] == ["started"]
    done = events[-1]
    assert done.event == "complete"
    assert (done.data["exit_code"], done.data["reason"]) == (3, "exited")
    assert done.data["duration_ms"] < 20_000  # not the child's 300 s
    child = int(pid_file.read_text())
    wait_for(lambda: not alive(child), 10, "the background child was left running")


def test_output_held_by_a_process_outside_the_group_does_not_hold_the_run(
    system: RdevSystem, project: str, tmp_path: Path
) -> None:
    """A child that left the group with setsid survives the group kill and keeps stdout
    open: 2 s after the kill rdev stops reading, and the run ends."""
    pid_file = tmp_path / "escaped"
    try:
        with system.client() as client:
            cid = submit(client, project, f"setsid sleep 300 & echo $! > {pid_file}; echo out")
            _, events = read_events(client, events_url(project, cid), timeout=30)
        assert [e.data["line"] for e in events if e.event == "output"] == ["out"]
        done = events[-1]
        assert done.event == "complete"
        assert (done.data["exit_code"], done.data["reason"]) == (0, "exited")
    finally:
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_timeout_ends_with_124(system: RdevSystem, project: str) -> None:
    with system.client() as client:
        cid = submit(client, project, "echo before; sleep 60", timeout_s=1)
        _, events = read_events(client, events_url(project, cid))
    assert [e.data["line"] for e in events if e.event == "output"] == ["before"]
    assert events[-2].event == "complete" or events[-1].event == "complete"
    done = events[-1]
    assert (done.data["exit_code"], done.data["reason"]) == (124, "timeout")


def test_signal_death_is_128_plus_n(system: RdevSystem, project: str) -> None:
    with system.client() as client:
        cid = submit(client, project, "kill -USR1 $$")
        _, events = read_events(client, events_url(project, cid))
    assert events[-1].data["exit_code"] == 128 + signal.SIGUSR1
    assert events[-1].data["reason"] == "exited"


def test_a_cancelled_queued_command_never_starts(
    system: RdevSystem, project: str, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    with system.client() as client:
        blockers = [submit(client, project, "sleep 30") for _ in range(4)]
        wait_for(
            lambda: all(state(system, b)["status"] == "running" for b in blockers),
            20,
            "blockers did not all start",
        )
        queued = submit(client, project, f"touch {marker}")
        assert state(system, queued)["status"] == "queued"
        assert client.post(f"/commands/{queued}/cancel").status_code == 202
        for b in blockers:
            client.post(f"/commands/{b}/cancel")
        _, events = read_events(client, events_url(project, queued))
    assert events[-1].data["reason"] == "cancelled"
    assert not marker.exists()
    assert state(system, queued)["started_at"] is None


def test_missing_workdir_is_rdevs_failure_255(system: RdevSystem, tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    system.create_project("vanishing", gone)
    gone.rmdir()
    with system.client() as client:
        cid = submit(client, "vanishing", "true")
        _, events = read_events(client, events_url("vanishing", cid))
    assert [e.event for e in events[-2:]] == ["error", "complete"]
    assert events[-1].data["exit_code"] == 255
    assert events[-1].data["reason"] == "error"
    assert "does not exist" in events[-2].data["message"]


def test_completed_command_cannot_be_cancelled(system: RdevSystem, project: str) -> None:
    with system.client() as client:
        cid = submit(client, project, "true")
        read_events(client, events_url(project, cid))
        response = client.post(f"/commands/{cid}/cancel")
    assert response.status_code == 409
