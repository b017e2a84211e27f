"""Takes commands from the per-priority consumers into free run slots.

Order: a free slot takes high before normal before low, except that a queue whose
oldest waiting command has waited longer than the aging threshold goes first
(oldest first), so low work still starts under a steady stream of high work.
FastStream cannot express priority across subscribers, so this loop uses nats-py:
raw no-wait pulls swept in that order, each taking up to as many commands as there
are free slots (under a backlog one pull fills them all, not one pull per slot),
woken by a core subscription on the command subjects. A wake-up names the
command's priority, so only queues known to have work are pulled; a full sweep of
every queue at least every sweep interval finds what no wake-up announced
(redeliveries, commands handed back for later).

A wake-up that finds a free slot and every queue empty (as far as this executor
knows) also starts reading what the command will need (its run's history, its
project's secrets) while the pull fetches it, so an idle executor starts a command
one broker round trip sooner. The command's cancel handle is registered before
that read: a cancel stored before the read is in the history, one stored after
reaches the handle.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg

from rdev_common import pull, streams, subjects
from rdev_common.events import CloudEvent, CommandRequested, Priority
from rdev_executor.domain import scheduling
from rdev_executor.entrypoints.run_input import InputRouter
from rdev_executor.entrypoints.run_observer import observe_run
from rdev_executor.service_layer.ports import ProjectSlots
from rdev_executor.service_layer.runner import Prepared, RunControl, Runner

log = structlog.get_logger()

ORDER = scheduling.ORDER
# A wake-up comes from the command's publish, which can reach this executor before
# JetStream has stored the command: a pull this soon after it waits that long for it.
FRESH_WAKE_S = 0.05
PROJECT_BUSY_DELAY_S = 0.5
# A read started on a wake-up is dropped if no pull brings its command this soon
# (another executor took it, or its project was full).
PREFETCH_TTL_S = 2.0
# The error of a run cancelled because its executor stopped (SIGTERM).
SHUTDOWN_REASON = "the executor stopped before the command finished (it was sent SIGTERM)"


@dataclass
class _Prefetch:
    control: RunControl
    prepared: asyncio.Task[Prepared]
    expiry: asyncio.TimerHandle


class PriorityLoop:
    def __init__(
        self,
        nc: Client,
        runner: Runner,
        concurrency: int,
        ack_wait_s: float,
        sweep_interval_s: float,
        aging_s: float = 30.0,
        slots: ProjectSlots[Any] | None = None,
        input_max_bytes: int = 1024**3,
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.runner = runner
        self.slots = asyncio.Semaphore(concurrency)
        self.ack_wait_s = ack_wait_s
        self.sweep_interval_s = sweep_interval_s
        self.aging_s = aging_s
        self.project_slots = slots
        self.wake = asyncio.Event()
        # Queues that may hold work: named by wake-ups, emptied by a pull that finds nothing.
        self.hinted: set[Priority] = set(ORDER)
        self._woken_at = dict.fromkeys(ORDER, 0.0)
        self._full_sweep_at = 0.0
        self.running: dict[str, RunControl] = {}
        self.inputs = InputRouter(nc, self.running, input_max_bytes)
        self.prefetched: dict[str, _Prefetch] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.stopping = False
        self._aged_checked_at = 0.0
        self._aged: list[Priority] = []

    async def start(self) -> None:
        async def wake(msg: Msg) -> None:
            # With every queue known empty, the woken command is the next one pulled;
            # behind a backlog it is not, and reading ahead for it would be wasted.
            next_up = not self.hinted
            with contextlib.suppress(ValueError, IndexError):
                self._hint(subjects.parse_command_subject(msg.subject)[0])
            if next_up:
                self._prefetch(msg.subject)

        async def cancel(msg: Msg) -> None:
            _, command_id, _ = subjects.parse_run_subject(msg.subject)
            control = self.running.get(command_id)
            if control is not None:
                control.cancelled.set()

        # Pull replies carry the message's own ack subject as reply-to, which the
        # client's request multiplexer does not hand back: use a plain inbox.
        self.inbox = self.nc.new_inbox()
        self.replies = await self.nc.subscribe(self.inbox)
        await self.nc.subscribe(f"{subjects.COMMANDS_PREFIX}.>", cb=wake)
        await self.nc.subscribe(subjects.any_run_event("cancel_requested"), cb=cancel)
        await self.inputs.start()

    async def _next(self, priority: Priority, count: int) -> tuple[list[Msg], bool]:
        """Up to `count` commands of `priority`, in stream order, in one pull, and
        whether the queue ran out (the server ends a pull it cannot fill with a status).

        A pull right after a wake-up waits briefly for a first command, which may not
        be stored yet; once it has one, it too ends as soon as the queue is empty.
        """
        subject = pull.next_subject(streams.COMMANDS, streams.executor_durable(priority))
        fresh = time.monotonic() - self._woken_at[priority] < FRESH_WAKE_S
        request = pull.pull_request(count, no_wait=True, expires_s=FRESH_WAKE_S if fresh else None)
        taken: list[Msg] = []
        try:
            await self.nc.publish(subject, request, reply=self.inbox)
            while len(taken) < count:
                msg = await self.replies.next_msg(timeout=2.0)
                if msg.headers and msg.headers.get("Status"):
                    return taken, True
                taken.append(msg)
        except Exception as exc:  # broker away: the periodic sweep tries again
            log.debug("pull failed", priority=priority.value, error=repr(exc))
            return taken, True
        return taken, False

    async def _oldest_wait_s(self, priority: Priority) -> float:
        """How long the oldest undelivered command of `priority` has waited (0 if none)."""
        info = await self.js.consumer_info(streams.COMMANDS, streams.executor_durable(priority))
        if not info.num_pending:
            return 0.0
        start = (info.delivered.stream_seq or 0) + 1
        msg = await self.js.get_msg(
            streams.COMMANDS, seq=start, next=True, subject=subjects.commands_of_priority(priority)
        )
        event = CloudEvent.from_bytes(msg.data or b"")
        return (datetime.now(UTC) - event.time).total_seconds()

    async def _order(self, candidates: set[Priority]) -> list[Priority]:
        """Aged queues first (checked at most once a second), then high → normal → low.

        Ageing only decides between queues, so a sweep of one queue skips the check.
        """
        now = time.monotonic()
        if len(candidates) > 1 and now - self._aged_checked_at >= 1.0:
            self._aged_checked_at = now
            try:
                waits = {p: await self._oldest_wait_s(p) for p in scheduling.AGEABLE}
            except Exception as exc:
                log.debug("aging check failed", error=repr(exc))
                waits = {}
            self._aged = scheduling.aged(waits, self.aging_s)
        return scheduling.pull_order(candidates, self._aged)

    async def _sweep(self, count: int) -> list[Msg]:
        """Up to `count` commands, taken queue by queue in priority order."""
        now = time.monotonic()
        if now >= self._full_sweep_at:
            self._full_sweep_at = now + self.sweep_interval_s
            self.hinted.update(ORDER)
        taken: list[Msg] = []
        for priority in await self._order(set(self.hinted)):
            woken_at = self._woken_at[priority]
            found, ran_out = await self._next(priority, count - len(taken))
            taken += found
            # A wake-up during the pull may be for a command stored after it looked.
            if ran_out and self._woken_at[priority] == woken_at:
                self.hinted.discard(priority)
            if len(taken) == count:
                break
        return taken

    async def run(self) -> None:
        while not self.stopping:
            # Every free slot is filled by one pull per queue, not one pull per slot.
            await self.slots.acquire()
            free = 1
            while not self.slots.locked():
                await self.slots.acquire()
                free += 1
            if self.stopping:
                # A run that ended during shutdown frees its slot: take nothing more, or
                # commands pulled as the loop is cancelled would wait out their ack wait.
                for _ in range(free):
                    self.slots.release()
                break
            self.wake.clear()
            msgs = await self._sweep(free)
            if msgs and self.stopping:
                # Stopped while pulling: hand the commands straight back to another executor.
                for msg in msgs:
                    with contextlib.suppress(Exception):
                        await msg.nak()
                msgs = []
            for _ in range(free - len(msgs)):
                self.slots.release()
            for msg in msgs:
                task = asyncio.create_task(self._handle(msg))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            if not msgs:
                if self.stopping:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self.sweep_interval_s)

    async def _handle(self, msg: Msg) -> None:
        try:
            req = CommandRequested.model_validate(CloudEvent.from_bytes(msg.data).data)
        except Exception as exc:
            log.error("poison command message terminated", error=repr(exc))
            await msg.term()
            self._release()
            return
        lease = None
        first_delivery = msg.metadata.num_delivered == 1
        if req.max_concurrency and self.project_slots is not None:
            lease = await self.project_slots.acquire(req.project, req.max_concurrency)
            if lease is None:
                # The project is at its limit on some executor: hand it back for later.
                with contextlib.suppress(Exception):
                    await msg.nak(delay=PROJECT_BUSY_DELAY_S)
                asyncio.get_running_loop().call_later(
                    PROJECT_BUSY_DELAY_S, self._hint, req.priority
                )
                self._release()
                return
        control, prepared = await self._take_prefetch(req.command_id, first_delivery)
        self.running[req.command_id] = control
        keepalive = asyncio.create_task(self._keep_alive(msg))
        structlog.contextvars.bind_contextvars(command_id=req.command_id, project=req.project)
        try:
            with observe_run(msg, req) as run:
                outcome = await self.runner.handle(
                    req,
                    control,
                    extra_env=run.env,
                    first_delivery=first_delivery,
                    prepared=prepared,
                )
                run.finished(outcome)
            await self._ack(msg)
        except Exception as exc:
            log.exception("run failed, handing the command back", error=repr(exc))
            with contextlib.suppress(Exception):
                await msg.nak(delay=1.0)
        finally:
            keepalive.cancel()
            self.running.pop(req.command_id, None)
            self.inputs.forget(req.command_id)
            if lease is not None and self.project_slots is not None:
                await self.project_slots.release(lease)
            self._release()

    def _prefetch(self, subject: str) -> None:
        """On a wake-up with a slot free, start reading what its command will need."""
        try:
            _, project, command_id = subjects.parse_command_subject(subject)
        except ValueError:
            return
        if self.stopping or self.slots.locked():
            return
        if command_id in self.prefetched or command_id in self.running:
            return
        control = self.running[command_id] = RunControl()  # before the read: see above
        task = asyncio.create_task(self.runner.prepare(project, command_id, first_delivery=True))
        expiry = asyncio.get_running_loop().call_later(
            PREFETCH_TTL_S, self._drop_prefetch, command_id
        )
        self.prefetched[command_id] = _Prefetch(control, task, expiry)

    def _drop_prefetch(self, command_id: str) -> None:
        prefetch = self.prefetched.pop(command_id, None)
        if prefetch is None:
            return
        prefetch.expiry.cancel()
        prefetch.prepared.cancel()
        if self.running.get(command_id) is prefetch.control:
            del self.running[command_id]

    async def _take_prefetch(
        self, command_id: str, first_delivery: bool
    ) -> tuple[RunControl, Prepared | None]:
        """The command's cancel handle, and what a wake-up read for it if that still holds."""
        prefetch = self.prefetched.pop(command_id, None)
        if prefetch is None:
            return RunControl(), None
        prefetch.expiry.cancel()
        if not first_delivery:  # read for a first delivery; a redelivery reads it all again
            prefetch.prepared.cancel()
            return prefetch.control, None
        try:
            return prefetch.control, await prefetch.prepared
        except Exception as exc:  # broker away while reading: read again in the run
            log.debug("prefetch failed", command_id=command_id, error=repr(exc))
            return prefetch.control, None

    def _hint(self, priority: Priority) -> None:
        self.hinted.add(priority)
        self._woken_at[priority] = time.monotonic()
        self.wake.set()

    def _release(self) -> None:
        self.slots.release()
        self.wake.set()

    async def _keep_alive(self, msg: Msg) -> None:
        """Tell the broker the command is still being worked on, so it is not redelivered."""
        while True:
            await asyncio.sleep(self.ack_wait_s / 3)
            with contextlib.suppress(Exception):
                await msg.in_progress()

    async def _ack(self, msg: Msg) -> None:
        # Not waited for: an ack lost to a broker restart only means a redelivery,
        # which finds the `completed` event and acks without running again.
        try:
            await msg.ack()
        except Exception as exc:
            log.warning("ack failed; the command will be redelivered and closed", error=repr(exc))

    async def stop(self, grace_s: float) -> None:
        """Take no more work; give runs `grace_s` to finish, then cancel the rest.

        A cancelled run still ends with its one `completed` event and an ack, so no
        command is left half-done for a redelivery to close as `lost`.
        """
        self.stopping = True
        self.wake.set()
        for command_id in list(self.prefetched):
            self._drop_prefetch(command_id)
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=grace_s)
        for control in self.running.values():
            if not control.cancelled.is_set():
                control.reason = SHUTDOWN_REASON
            control.cancelled.set()
        if self.tasks:
            # The runner's kill grace (SIGTERM → SIGKILL) plus publishing `completed`.
            await asyncio.wait(self.tasks, timeout=grace_s + 5.0)
        await self._close_replies()

    async def _close_replies(self) -> None:
        """Empty and close the pull inbox. Replies to pulls that timed out while the broker
        was away arrive late and stay queued once nothing pulls; closing the connection
        with a drain would wait for them for its whole timeout (30 s). A command among
        them goes straight back to the queue for another executor."""
        with contextlib.suppress(Exception):
            while True:
                msg = await self.replies.next_msg(timeout=0.05)
                if not (msg.headers and msg.headers.get("Status")):
                    await msg.nak()
        with contextlib.suppress(Exception):
            await self.replies.unsubscribe()
