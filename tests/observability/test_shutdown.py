"""SIGTERM to the executor: no new work, runs finish within the grace, the rest end cancelled.

Either way every run ends with its `completed` event; none is left for a
redelivery to close as `lost`. `rdev up` then restarts the executor.
"""

from __future__ import annotations

import os
import signal

import pytest

from tests.e2e.sse_helpers import events_url, read_events, submit
from tests.observability.conftest import PROJECT, TracedRun
from tests.observability.support import service_process
from tests.support import RdevSystem, wait_for

pytestmark = pytest.mark.e2e


def test_sigterm_finishes_short_runs_and_cancels_long_ones(
    observed: RdevSystem, traced_run: TracedRun
) -> None:
    with observed.client() as c:
        short = submit(c, PROJECT, "sleep 1; echo finished")
        long = submit(c, PROJECT, "sleep 120")

        def both_running() -> bool:
            states = [c.get(f"/commands/{i}").json()["data"]["status"] for i in (short, long)]
            return states == ["running", "running"]

        wait_for(both_running, 60, "both commands running")
        pid, _ = service_process(observed, "executor")
        os.kill(pid, signal.SIGTERM)
        _, short_events = read_events(c, events_url(PROJECT, short), timeout=120)
        _, long_events = read_events(c, events_url(PROJECT, long), timeout=120)
    short_done = next(e.data for e in short_events if e.event == "complete")
    assert short_done["reason"] == "exited" and short_done["exit_code"] == 0
    assert [e.data["line"] for e in short_events if e.event == "output"] == ["finished"]
    long_done = next(e.data for e in long_events if e.event == "complete")
    assert long_done["reason"] == "cancelled", long_done
    wait_for(lambda: not os.path.exists(f"/proc/{pid}/cmdline") or _is_zombie(pid), 60, "exit")


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
