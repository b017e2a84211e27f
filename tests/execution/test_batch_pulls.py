"""The priority loop fills its free slots with one pull per queue, in priority order,
and keeps taking commands announced by wake-ups (no sweep runs within these tests)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from rdev_common import streams, subjects
from rdev_common.broker import EmbeddedNats
from rdev_common.events import CloudEvent, CommandRequested, Priority
from rdev_common.ids import new_id
from rdev_common.settings import CommonSettings
from rdev_executor.entrypoints.priority_loop import PriorityLoop
from tests.support import wait_for_async

WAIT_S = 30


class GatedRunner:
    """Records the order runs start in; each run lasts until the gate opens."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.gate = asyncio.Event()

    async def handle(self, req: CommandRequested, *_: Any, **__: Any) -> None:
        self.started.append(req.command_id)
        await self.gate.wait()

    async def prepare(self, *_: Any, **__: Any) -> None:
        return None


@pytest.fixture
async def nc(tmp_path: Path) -> AsyncIterator[Client]:
    server = EmbeddedNats(tmp_path / "nats")
    server.start()
    client = await nats.connect(server.url)
    js = client.jetstream()
    await streams.ensure_streams(js, CommonSettings(nats_url=server.url))
    for priority in Priority:
        await streams.ensure_consumer(js, streams.executor_consumer(priority, 30.0))
    yield client
    await client.close()
    server.stop(kill=True)


async def queue(nc: Client, priority: Priority, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        req = CommandRequested(command_id=new_id(), project="p", command="true", priority=priority)
        event = CloudEvent.wrap(req, source="rdev/test", subject=req.command_id, project="p")
        await nc.jetstream().publish(
            subjects.command(priority, "p", req.command_id),
            event.to_bytes(),
            headers={"Nats-Msg-Id": event.id},
        )
        ids.append(req.command_id)
    return ids


async def until(condition: Any, what: str) -> None:
    await wait_for_async(condition, WAIT_S, what, interval=0.01)


async def test_free_slots_are_filled_by_one_pull_per_queue_in_priority_order(nc: Client) -> None:
    low = await queue(nc, Priority.LOW, 3)
    normal = await queue(nc, Priority.NORMAL, 10)
    high = await queue(nc, Priority.HIGH, 5)
    pulls: list[str] = []

    async def count_pull(msg: Msg) -> None:
        pulls.append(msg.subject.rsplit(".", 1)[1])

    spy = await nc.subscribe(f"$JS.API.CONSUMER.MSG.NEXT.{streams.COMMANDS}.>", cb=count_pull)
    runner = GatedRunner()
    loop = PriorityLoop(nc, runner, 8, 30.0, sweep_interval_s=3600)  # type: ignore[arg-type]
    await loop.start()
    task = asyncio.create_task(loop.run())
    try:
        await until(lambda: len(runner.started) == 8, "8 runs")
        await asyncio.sleep(0.2)  # nothing more may start while every slot is taken
        assert runner.started == high + normal[:3]
        assert pulls == ["executor-high", "executor-normal"]

        # As slots free up, the rest follow in priority order, low last.
        runner.gate.set()
        await until(lambda: len(runner.started) == 18, "all 18 runs")
        assert runner.started == high + normal + low

        # Commands announced only by their wake-ups, while others run, are all taken.
        runner.gate.clear()
        more = await queue(nc, Priority.NORMAL, 12)
        await until(lambda: len(runner.started) == 26, "8 of the next 12")
        runner.gate.set()
        await until(lambda: len(runner.started) == 30, "all 30 runs")
        assert runner.started[18:] == more
    finally:
        await spy.unsubscribe()
        await loop.stop(1.0)
        task.cancel()


async def test_runs_ending_during_shutdown_free_slots_that_take_nothing(nc: Client) -> None:
    await queue(nc, Priority.NORMAL, 4)
    runner = GatedRunner()
    loop = PriorityLoop(nc, runner, 4, 30.0, sweep_interval_s=3600)  # type: ignore[arg-type]
    await loop.start()
    task = asyncio.create_task(loop.run())
    await until(lambda: len(runner.started) == 4, "4 runs")
    await queue(nc, Priority.NORMAL, 10)  # a backlog behind the runs, as a service stops

    stopping = asyncio.create_task(loop.stop(5.0))  # as the service stops
    await asyncio.sleep(0)  # the stop has begun: it waits for the runs
    runner.gate.set()  # they end within the grace period, freeing their slots
    await stopping
    await asyncio.wait_for(task, WAIT_S)  # the loop ends by itself: no pull in flight
    await nc.flush()  # the runs' acks
    info = await nc.jetstream().consumer_info(streams.COMMANDS, "executor-normal")
    # Nothing was taken after the stop: no command waits out its ack wait on this
    # executor, and the backlog is all there for the next one.
    assert info.delivered.consumer_seq == 4
    assert (info.num_ack_pending, info.num_pending) == (0, 10)
