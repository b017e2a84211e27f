"""A run's processes never outlive its executor: killed with SIGKILL, or stopped.

Each command starts a grandchild (a subshell's `sleep`) and stays silent, so no
SIGPIPE ends it by chance; the test finds a run's processes by its session (the
shell is the session leader) and kills the real executor process.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.e2e.sse_helpers import events_url, read_events, submit
from tests.support import RdevSystem, service_pids, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def session_members(sid: int) -> list[int]:
    """Live (not zombie) processes of session `sid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def start_silent_run(system: RdevSystem, project: str, pid_file: Path, prefix: str = "") -> str:
    """A run of a shell, a subshell and two sleeps; returns its command id once all run."""
    command = f"echo $$ > {pid_file}; {prefix}(sleep 300; true) & sleep 300"
    with system.client() as client:
        cid = submit(client, project, command)
    wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), 30, "no shell pid")
    sid = int(pid_file.read_text())
    wait_for(lambda: len(session_members(sid)) >= 4, 30, "the run's processes did not all start")
    return cid


def test_a_killed_executors_run_does_not_outlive_it(system: RdevSystem, tmp_path: Path) -> None:
    system.create_project("orphans")
    pid_file = tmp_path / "shell"
    cid = start_silent_run(system, "orphans", pid_file)
    sid = int(pid_file.read_text())
    members = session_members(sid)
    (executor,) = service_pids(system, "executor")
    os.kill(executor, signal.SIGKILL)
    wait_for(lambda: not session_members(sid), 30, f"run processes outlived it: {members}")
    with system.client() as client:
        _, events = read_events(client, events_url("orphans", cid), timeout=120)
    done = events[-1].data
    assert (done["reason"], done["exit_code"]) == ("lost", 255)


def test_sigterm_ends_every_runs_processes_before_the_executor_exits(
    system: RdevSystem, tmp_path: Path
) -> None:
    system.create_project("stopping")
    plain, stubborn = tmp_path / "plain", tmp_path / "stubborn"
    wait_for(lambda: service_pids(system, "executor"), 60, "no executor")
    runs = [
        start_silent_run(system, "stopping", plain),
        # Ignores SIGTERM, its subshell too: only the SIGKILL after the grace ends it.
        start_silent_run(system, "stopping", stubborn, prefix="trap '' TERM; "),
    ]
    sessions = [int(plain.read_text()), int(stubborn.read_text())]
    (executor,) = service_pids(system, "executor")
    os.kill(executor, signal.SIGTERM)
    wait_for(lambda: not alive(executor), 60, "the executor did not exit")
    left = [pid for sid in sessions for pid in session_members(sid)]
    assert not left, f"run processes alive when the executor exited: {left}"
    with system.client() as client:
        for cid in runs:
            _, events = read_events(client, events_url("stopping", cid), timeout=60)
            assert events[-1].data["reason"] == "cancelled"
            state = client.get(f"/commands/{cid}").json()["data"]
            assert "executor stopped" in (state.get("error") or ""), state


def test_an_executor_killed_while_it_stops_leaves_no_run_process(
    system: RdevSystem, tmp_path: Path
) -> None:
    """`make run` stopped with a budget shorter than the executor's grace: the
    supervisor's SIGKILL lands before the executor's own SIGKILL of a run that ignores
    SIGTERM. The run's processes must still end."""
    system.create_project("cut-short")
    pid_file = tmp_path / "stubborn"
    wait_for(lambda: service_pids(system, "executor"), 60, "no executor")
    start_silent_run(system, "cut-short", pid_file, prefix="trap '' TERM; ")
    sid = int(pid_file.read_text())
    members = session_members(sid)
    (executor,) = service_pids(system, "executor")
    os.kill(executor, signal.SIGTERM)
    os.kill(executor, signal.SIGKILL)
    wait_for(lambda: not session_members(sid), 30, f"run processes outlived it: {members}")
