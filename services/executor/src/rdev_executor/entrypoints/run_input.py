"""Runs' input from the broker: the executor running a command answers its input requests.

Every executor subscribes to every run's input subject (`rdev.input.*.*`); one that
does not run the command stays silent, so the api's request times out and is tried
again until the run starts here or ends. `data` and `eof` of a run are written in
order by one task per run, which answers each once it is in the command's stdin; a
run holds at most QUEUE of them waiting (more are answered `busy`). `resize` and
`signal` are applied at once, never behind input the command does not read.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from rdev_common import subjects
from rdev_common.run_input import Message, Op, Reply, Status
from rdev_executor.service_layer.ports import InputClosed, Interactive, Terminal
from rdev_executor.service_layer.runner import RunControl

log = structlog.get_logger()

QUEUE = 16


class _RunInput:
    def __init__(self, nc: Client, control: RunControl, max_bytes: int) -> None:
        self.nc = nc
        self.control = control
        self.max_bytes = max_bytes
        self.queue: asyncio.Queue[Message] = asyncio.Queue(QUEUE)
        self.pending: dict[tuple[str, int], str] = {}  # message → where to answer it
        self.done: dict[str, int] = {}  # writer → its last message written
        self.written = 0
        self.closed = False
        self.task = asyncio.create_task(self._work())
        self.signals: set[asyncio.Task[None]] = set()

    async def answer(self, reply: str, status: Status, message: str = "") -> None:
        with contextlib.suppress(Exception):  # the requester asks again
            await self.nc.publish(reply, Reply(status, message, self.written).to_bytes())

    async def submit(self, m: Message, reply: str) -> None:
        key = (m.writer, m.seq)
        if m.seq <= self.done.get(m.writer, 0):  # a retry of one already written
            await self.answer(reply, Status.OK)
        elif key in self.pending:  # a retry of one still waiting: answer the retry
            self.pending[key] = reply
        elif self.queue.full():
            await self.answer(reply, Status.BUSY, "the run's input queue is full")
        else:
            self.pending[key] = reply
            self.queue.put_nowait(m)

    async def _work(self) -> None:
        await self.control.spawned.wait()
        process = self.control.process
        while True:
            m = await self.queue.get()
            status, message = await self._apply(process, m)
            if status in (Status.OK, Status.CLOSED, Status.LIMIT):
                self.done[m.writer] = m.seq
            await self.answer(self.pending.pop((m.writer, m.seq)), status, message)

    async def _apply(self, process: object, m: Message) -> tuple[Status, str]:
        if not isinstance(process, Interactive):
            return Status.NOT_OPEN, "this run's backend takes no input"
        if self.closed:
            return Status.CLOSED, "the run's stdin is closed"
        if m.op is Op.EOF:
            process.close_input()
            self.closed = True
            return Status.OK, ""
        if self.written + len(m.data) > self.max_bytes:
            return Status.LIMIT, f"a run takes at most {self.max_bytes} bytes of input"
        try:
            await process.write_input(m.data)
        except InputClosed as exc:
            self.closed = True
            return Status.CLOSED, str(exc)
        self.written += len(m.data)
        return Status.OK, ""

    async def out_of_band(self, m: Message, reply: str) -> None:
        """A resize or a signal, once the command runs."""
        await self.control.spawned.wait()
        process = self.control.process
        try:
            if m.op is Op.SIGNAL:
                signum = m.signum()
                if process is not None:
                    process.signal_group(signum)
            elif isinstance(process, Terminal):
                size = m.size()
                process.resize(size.cols, size.rows)
            else:
                await self.answer(reply, Status.NOT_OPEN, "the run has no terminal")
                return
        except ValueError as exc:
            await self.answer(reply, Status.INVALID, str(exc))
            return
        await self.answer(reply, Status.OK)

    def close(self) -> None:
        self.task.cancel()
        for task in self.signals:
            task.cancel()
        process = self.control.process
        if isinstance(process, Interactive):
            process.close_input()


class InputRouter:
    def __init__(self, nc: Client, running: dict[str, RunControl], max_bytes: int) -> None:
        self.nc = nc
        self.running = running
        self.max_bytes = max_bytes
        self.runs: dict[str, _RunInput] = {}
        self.sub: Subscription | None = None

    async def start(self) -> None:
        self.sub = await self.nc.subscribe(subjects.any_run_input(), cb=self._on_message)

    async def _on_message(self, msg: Msg) -> None:
        # Called in turn for every message of the subscription: nothing here may wait
        # on a command.
        try:
            _, command_id = subjects.parse_input_subject(msg.subject)
        except ValueError:
            return
        control = self.running.get(command_id)
        if control is None or not msg.reply:
            return  # not a run of this executor (or not yet, or no longer)
        run = self.runs.get(command_id)
        if run is None or run.control is not control:
            run = self.runs[command_id] = _RunInput(self.nc, control, self.max_bytes)
        try:
            m = Message.parse(msg.headers, msg.data)
        except ValueError as exc:
            await run.answer(msg.reply, Status.INVALID, str(exc))
            return
        if m.op in (Op.DATA, Op.EOF):
            await run.submit(m, msg.reply)
            return
        task = asyncio.create_task(run.out_of_band(m, msg.reply))
        run.signals.add(task)
        task.add_done_callback(run.signals.discard)

    def forget(self, command_id: str) -> None:
        """The run ended: its stdin closes, its waiting input is dropped unanswered."""
        run = self.runs.pop(command_id, None)
        if run is not None:
            run.close()
