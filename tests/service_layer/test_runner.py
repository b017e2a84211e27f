"""The run use case with a scripted process and an in-memory event log: the order of a
run's events, secrets masked, a redelivered run not run twice. No broker, no process."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from rdev_common.events import (
    CommandCompleted,
    CommandRequested,
    CommandStarted,
    EventData,
    OutputBatch,
)
from rdev_executor.service_layer.ports import Chunk
from rdev_executor.service_layer.runner import Limits, RunControl, Runner
from tests.support import wait_for_async

LIMITS = Limits(
    kill_grace_s=0.5, batch_bytes=65536, batch_age_s=0.01, max_line_chars=4096, cap_bytes=1 << 20
)


@dataclass
class FakeLog:
    """Stores every event in order, by kind, as the stream would."""

    events: list[tuple[str, object]] = field(default_factory=list)

    async def publish(
        self,
        event: EventData,
        kind: str,
        *,
        project: str,
        command_id: str,
        event_id: str | None = None,
    ) -> int:
        self.events.append((kind, event))
        return len(self.events)

    async def publish_output(self, batch: OutputBatch, *, project: str) -> int:
        self.events.append(("output", batch))
        return len(self.events)

    async def exists(self, project: str, command_id: str, kind: str) -> bool:
        return any(k == kind for k, _ in self.events)

    async def latest_kind(self, project: str, command_id: str) -> str | None:
        return self.events[-1][0] if self.events else None

    def kinds(self) -> list[str]:
        return [k for k, _ in self.events]

    def text(self) -> str:
        return "".join(e.text.decode() + "\n" for k, e in self.events if isinstance(e, OutputBatch))


class ScriptedProcess:
    """Writes `lines` to stdout, then exits with `code`; or, with `hang`, waits for a
    signal and exits 128+N."""

    def __init__(self, lines: list[str], code: int = 0, hang: bool = False) -> None:
        self.lines, self.code, self.hang = lines, code, hang
        self.signals: list[int] = []
        self.exited = asyncio.Event()

    async def output(self) -> AsyncIterator[Chunk]:
        for line in self.lines:
            yield Chunk("stdout", f"{line}\n".encode())
        await self.exited.wait()

    async def wait(self) -> int:
        if not self.hang:
            self.exited.set()
        await self.exited.wait()
        return self.code

    def signal_group(self, signum: int) -> None:
        self.signals.append(signum)
        self.code = 128 + signum
        self.exited.set()

    def close(self) -> None:
        self.exited.set()


@dataclass
class FakeBackend:
    process: ScriptedProcess
    env: dict[str, str] = field(default_factory=dict)

    async def start(self, request: CommandRequested, extra_env: dict[str, str]) -> ScriptedProcess:
        self.env = extra_env
        return self.process


class Secrets:
    async def for_project(self, project: str) -> dict[str, str]:
        return {"TOKEN": "s3cr3t-value"}


def request(timeout_s: float | None = None) -> CommandRequested:
    return CommandRequested(command_id="c1", project="p", command="x", timeout_s=timeout_s)


async def test_a_run_is_started_then_its_output_then_completed() -> None:
    log = FakeLog()
    backend = FakeBackend(ScriptedProcess(["one", "two"], code=3))
    runner = Runner(backend, log, LIMITS, "exec-1")
    outcome = await runner.handle(request(), RunControl(), {})
    assert outcome is not None and outcome.exit_code == 3
    assert log.kinds()[0] == "started" and log.kinds()[-1] == "completed"
    assert set(log.kinds()[1:-1]) == {"output"}
    assert log.text() == "one\ntwo\n"
    started, completed = log.events[0][1], log.events[-1][1]
    assert isinstance(started, CommandStarted) and started.executor == "exec-1"
    assert isinstance(completed, CommandCompleted)
    assert (completed.exit_code, completed.reason.value, completed.lines) == (3, "exited", 2)


async def test_secrets_reach_the_command_but_not_its_output() -> None:
    log = FakeLog()
    backend = FakeBackend(ScriptedProcess(["token is s3cr3t-value"]))
    await Runner(backend, log, LIMITS, "e", Secrets()).handle(request(), RunControl(), {})
    assert backend.env["TOKEN"] == "s3cr3t-value"
    assert "s3cr3t-value" not in log.text() and "token is" in log.text()


async def test_a_redelivered_run_that_completed_is_not_run_again() -> None:
    log = FakeLog()
    first = ScriptedProcess(["once"])
    await Runner(FakeBackend(first), log, LIMITS, "e").handle(request(), RunControl(), {})
    again = ScriptedProcess(["twice"])
    outcome = await Runner(FakeBackend(again), log, LIMITS, "e").handle(request(), RunControl(), {})
    assert outcome is None and log.kinds().count("completed") == 1
    assert "twice" not in log.text()


async def test_a_redelivered_run_that_had_started_is_closed_as_lost() -> None:
    log = FakeLog()
    await log.publish(
        CommandStarted(command_id="c1", project="p", executor="gone"),
        "started",
        project="p",
        command_id="c1",
    )
    outcome = await Runner(FakeBackend(ScriptedProcess(["x"])), log, LIMITS, "e").handle(
        request(), RunControl(), {}
    )
    assert outcome is not None and outcome.reason == "lost"
    assert log.kinds() == ["started", "completed"]


async def test_a_cancel_signals_the_group_and_completes_as_cancelled() -> None:
    log, control = FakeLog(), RunControl()
    process = ScriptedProcess([], hang=True)
    run = asyncio.create_task(
        Runner(FakeBackend(process), log, LIMITS, "e").handle(request(), control, {})
    )
    await wait_for_async(lambda: "started" in log.kinds(), 10, "the run's started event")
    control.cancelled.set()
    outcome = await asyncio.wait_for(run, 10)
    assert process.signals[0] == signal.SIGTERM
    assert outcome is not None and outcome.reason == "cancelled"
    assert log.kinds()[-1] == "completed"


async def test_a_run_cancelled_before_it_started_never_starts() -> None:
    log, control = FakeLog(), RunControl()
    control.cancelled.set()
    process = ScriptedProcess(["never"])
    outcome = await Runner(FakeBackend(process), log, LIMITS, "e").handle(request(), control, {})
    assert outcome is not None and outcome.reason == "cancelled"
    assert log.kinds() == ["completed"] and not process.exited.is_set()
