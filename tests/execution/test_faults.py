"""Faults: a killed executor, a restarted broker; scheduling: priorities, project limits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rdev_common.broker import EmbeddedNats, free_port
from tests.e2e.sse_helpers import events_url, read_events, submit
from tests.support import RdevSystem, service_pids, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def state(system: RdevSystem, cid: str) -> dict:
    with system.client() as c:
        return c.get(f"/commands/{cid}").json()["data"]


def test_executor_killed_mid_run_closes_the_run_as_lost(system: RdevSystem) -> None:
    system.create_project("crash")
    with system.client() as client:
        cid = submit(client, "crash", "echo started; sleep 60")
        wait_for(lambda: state(system, cid)["status"] == "running", 20, "not running")
        (executor,) = service_pids(system, "executor")
        os.kill(executor, signal.SIGKILL)
        _, events = read_events(client, events_url("crash", cid), timeout=180)
        assert [e.event for e in events[-2:]] == ["error", "complete"]
        assert events[-1].data["exit_code"] == 255
        assert events[-1].data["reason"] == "lost"
        # The executor that takes over runs the next commands normally.
        nxt = submit(client, "crash", "echo next")
        _, after = read_events(client, events_url("crash", nxt), timeout=180)
    assert [e.data["line"] for e in after if e.event == "output"] == ["next"]
    assert after[-1].data["exit_code"] == 0


def test_broker_restart_mid_run_loses_and_duplicates_no_line(
    system: RdevSystem, broker: EmbeddedNats
) -> None:
    system.create_project("restart")
    total = 20000
    with system.client() as client:
        cid = submit(
            client,
            "restart",
            f"for i in $(seq 1 {total}); do echo line $i; "
            f"[ $((i % 1000)) -eq 0 ] && sleep 0.1; done; true",
        )
        wait_for(lambda: state(system, cid)["status"] == "running", 20, "not running")
        broker.stop()
        broker.start()
        wait_for(lambda: state(system, cid)["status"] == "completed", 120, "did not complete")
        _, events = read_events(client, events_url("restart", cid), timeout=120)
    lines = [e.data["line"] for e in events if e.event == "output"]
    assert lines == [f"line {i}" for i in range(1, total + 1)]
    assert [e.data["n"] for e in events if e.event == "output"] == list(range(1, total + 1))
    assert sum(1 for e in events if e.event == "complete") == 1


@pytest.fixture(scope="module")
def single_slot(tmp_path_factory: pytest.TempPathFactory):
    from tests.support import start_system

    yield from start_system(
        tmp_path_factory.mktemp("single"), RDEV_EXECUTOR_CONCURRENCY="1", RDEV_PRIORITY_AGING_S="4"
    )


def started_order(system: RdevSystem, ids: list[str]) -> list[str]:
    states = {cid: state(system, cid) for cid in ids}
    return sorted(ids, key=lambda cid: states[cid]["started_at"])


def test_a_free_slot_takes_high_before_normal_before_low(single_slot: RdevSystem) -> None:
    single_slot.create_project("prio")
    with single_slot.client() as client:
        blocker = submit(client, "prio", "sleep 1")
        wait_for(lambda: state(single_slot, blocker)["status"] == "running", 20, "no start")
        low = [submit(client, "prio", "true", priority="low") for _ in range(3)]
        normal = [submit(client, "prio", "true", priority="normal") for _ in range(3)]
        high = [submit(client, "prio", "true", priority="high") for _ in range(3)]
        for cid in low + normal + high:
            read_events(client, events_url("prio", cid))
    assert started_order(single_slot, low + normal + high) == high + normal + low


def test_low_priority_work_ages_and_starts_under_a_stream_of_high_work(
    single_slot: RdevSystem,
) -> None:
    single_slot.create_project("aging")
    with single_slot.client() as client:
        low = submit(client, "aging", "true", priority="low")
        highs = []
        # Keep high work queued for well past the aging threshold (4 s).
        for _ in range(40):
            highs.append(submit(client, "aging", "sleep 0.25", priority="high"))
            if state(single_slot, low)["status"] == "completed":
                break
        read_events(client, events_url("aging", low), timeout=60)
        for cid in highs:
            client.post(f"/commands/{cid}/cancel")
    assert state(single_slot, low)["status"] == "completed"
    pending_highs = [
        h
        for h in highs
        if (state(single_slot, h)["started_at"] or "9") > state(single_slot, low)["started_at"]
    ]
    assert pending_highs, "low work only started once high work ran out: no aging"


def test_project_max_concurrency_holds_across_two_executors(
    system: RdevSystem, tmp_path: Path
) -> None:
    import asyncio

    from sqlalchemy import update
    from sqlalchemy.ext.asyncio import create_async_engine

    system.create_project("limited")
    from rdev_common.db.tables import ProjectRow

    async def limit() -> None:
        engine = create_async_engine(f"sqlite+aiosqlite:///{system.data_dir / 'rdev.db'}")
        async with engine.begin() as conn:
            await conn.execute(
                update(ProjectRow).where(ProjectRow.id == "limited").values(max_concurrency=1)
            )
        await engine.dispose()

    asyncio.run(limit())
    env = {**system.env, "RDEV_HEALTH_PORT": str(free_port()), "RDEV_EXECUTOR_CONCURRENCY": "4"}
    second = subprocess.Popen([sys.executable, "-m", "rdev_executor"], env=env)
    try:
        log = tmp_path / "overlap.log"
        cmd = f"echo start >> {log}; sleep 0.4; echo end >> {log}"
        with system.client() as client:
            ids = [submit(client, "limited", cmd) for _ in range(6)]
            for cid in ids:
                read_events(client, events_url("limited", cid), timeout=60)
        marks = log.read_text().split()
        assert marks == ["start", "end"] * 6, f"runs overlapped: {marks}"
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)


@pytest.fixture(scope="module")
def wake_only(tmp_path_factory: pytest.TempPathFactory):
    from tests.support import start_system

    # No periodic sweep within the test: every command must be found through its wake-up.
    yield from start_system(tmp_path_factory.mktemp("wake"), RDEV_EXECUTOR_SWEEP_INTERVAL_S="3600")


def test_every_command_is_taken_on_its_wake_up_without_a_sweep(wake_only: RdevSystem) -> None:
    # A wake-up can reach the executor before JetStream has stored the command; a pull
    # that found nothing then left the command to the next sweep (here: an hour).
    wake_only.create_project("wake")
    with wake_only.client() as client:
        for i in range(60):
            cid = submit(client, "wake", f"echo {i}")
            _, events = read_events(client, events_url("wake", cid), timeout=30)
            assert events[-1].event == "complete" and events[-1].data["exit_code"] == 0
