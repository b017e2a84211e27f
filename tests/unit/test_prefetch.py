"""The priority loop's wake-up read: a cancel is never lost between wake-up and run."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from rdev_executor.entrypoints import priority_loop
from rdev_executor.entrypoints.priority_loop import PriorityLoop
from rdev_executor.service_layer.runner import Prepared, _History
from tests.support import wait_for_async

SUBJECT = "rdev.commands.normal.proj.cmd-1"


class Runner:
    def __init__(self) -> None:
        self.reads: list[tuple[str, str, bool]] = []

    async def prepare(self, project: str, command_id: str, first_delivery: bool) -> Prepared:
        self.reads.append((project, command_id, first_delivery))
        return Prepared(_History(), {"TOKEN": "s3cret"})


def loop(concurrency: int = 2) -> tuple[PriorityLoop, Runner]:
    runner = Runner()
    nc: Any = SimpleNamespace(jetstream=lambda: None)
    return PriorityLoop(nc, runner, concurrency, 30.0, 1.0), runner  # type: ignore[arg-type]


async def test_a_wake_up_with_a_free_slot_reads_ahead_and_the_run_takes_it() -> None:
    pl, runner = loop()
    pl._prefetch(SUBJECT)
    assert runner.reads == [] and "cmd-1" in pl.running, "the cancel handle comes first"
    control, prepared = await pl._take_prefetch("cmd-1", first_delivery=True)
    assert runner.reads == [("proj", "cmd-1", True)]
    assert prepared is not None and prepared.secrets == {"TOKEN": "s3cret"}
    assert control is pl.running["cmd-1"] and not pl.prefetched


async def test_a_cancel_after_the_wake_up_reaches_the_run() -> None:
    pl, _ = loop()
    pl._prefetch(SUBJECT)
    pl.running["cmd-1"].cancelled.set()  # what the cancel subscription does
    control, _ = await pl._take_prefetch("cmd-1", first_delivery=True)
    assert control.cancelled.is_set()


async def test_a_redelivery_does_not_use_what_was_read_for_a_first_delivery() -> None:
    pl, _ = loop()
    pl._prefetch(SUBJECT)
    control, prepared = await pl._take_prefetch("cmd-1", first_delivery=False)
    assert prepared is None and control is pl.running["cmd-1"]


async def test_no_read_ahead_without_a_free_slot() -> None:
    pl, runner = loop(concurrency=1)
    await pl.slots.acquire()
    pl._prefetch(SUBJECT)
    await asyncio.sleep(0)
    assert not pl.prefetched and "cmd-1" not in pl.running and runner.reads == []


async def test_an_unclaimed_read_is_dropped_with_its_handle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(priority_loop, "PREFETCH_TTL_S", 0.01)
    pl, _ = loop()
    pl._prefetch(SUBJECT)
    assert pl.prefetched  # read ahead, then dropped when nobody claims it in time
    await wait_for_async(lambda: not pl.prefetched, 10, "the unclaimed read to be dropped")
    assert "cmd-1" not in pl.running
    control, prepared = await pl._take_prefetch("cmd-1", first_delivery=True)
    assert prepared is None and not control.cancelled.is_set()
