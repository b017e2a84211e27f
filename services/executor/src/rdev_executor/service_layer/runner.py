"""The run use case: one command.requested in, started → output… → exactly one completed out."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid
from dataclasses import dataclass, field

import structlog

from rdev_common.events import (
    CommandCompleted,
    CommandRequested,
    CommandStarted,
    Reason,
)
from rdev_executor.domain import outcome as outcomes
from rdev_executor.domain.outcome import Outcome
from rdev_executor.domain.output import OutputBatcher
from rdev_executor.domain.redaction import Redactor
from rdev_executor.domain.tty_output import TtyBatcher
from rdev_executor.service_layer import progress
from rdev_executor.service_layer.output_pump import BatchPublisher, OutputPump, end_of_output
from rdev_executor.service_layer.output_queue import OutputQueue
from rdev_executor.service_layer.ports import (
    Backend,
    EventLog,
    Process,
    ProcessLost,
    RunAlreadyEnded,
    SecretSource,
    SecretsUnreadable,
    Spool,
)

log = structlog.get_logger()


@dataclass(frozen=True)
class Limits:
    kill_grace_s: float
    batch_bytes: int
    batch_age_s: float
    max_line_chars: int
    cap_bytes: int
    tail_idle_s: float = 1.0
    # A run's output waiting for the broker, held in memory (then in the spool).
    buffer_bytes: int = 4 * 1024 * 1024


@dataclass
class RunControl:
    """Handle on a run in progress, for cancellation and its input."""

    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    # Why, when not a user's cancel (e.g. the executor is stopping): the run's error.
    reason: str | None = None
    # Set once the command's process runs (its input goes there), and once it ended.
    process: Process | None = None
    spawned: asyncio.Event = field(default_factory=asyncio.Event)


def lifecycle_id(command_id: str, kind: str) -> str:
    """Deterministic id of a run's started/completed event: the broker refuses a second one."""
    return str(uuid.uuid5(uuid.UUID(int=0), f"{command_id}.{kind}"))


@dataclass(frozen=True)
class _History:
    completed: bool = False
    started: bool = False
    cancel_requested: bool = False


@dataclass(frozen=True)
class Prepared:
    """What a run needs from the broker before it may start: the run's history and
    the project's secrets (or why they cannot be read)."""

    history: _History
    secrets: dict[str, str]
    secrets_error: str | None = None


@dataclass
class Runner:
    backend: Backend
    events: EventLog
    limits: Limits
    executor_name: str
    secrets: SecretSource | None = None
    spool: Spool | None = None

    async def handle(
        self,
        req: CommandRequested,
        control: RunControl,
        extra_env: dict[str, str],
        *,
        first_delivery: bool = False,
        prepared: Prepared | None = None,
    ) -> Outcome | None:
        """Run `req` unless the log shows it already ran; None when nothing was left to do.

        The project's secrets become environment variables of the command, and their
        values are masked in its output before anything is published. `prepared`, if
        given, is `prepare` of this first delivery, started before `control` could
        miss a cancel and no earlier.
        """
        p, cid = req.project, req.command_id
        prepared = prepared or await self.prepare(p, cid, first_delivery)
        history, secrets = prepared.history, prepared.secrets
        if history.completed:
            return None
        if history.started:
            return await self._complete(
                req,
                outcomes.lost("the executor running this command stopped before it completed"),
                0,
                None,
            )
        if control.cancelled.is_set() or history.cancel_requested:
            return await self._complete(req, outcomes.cancelled_before_start(), 0, None)
        if prepared.secrets_error:
            log.warning("project secrets unreadable", command_id=cid, error=prepared.secrets_error)
            return await self._complete(req, outcomes.failed(prepared.secrets_error), 0, None)
        # `started` is stored while the process spawns; nothing else of the run is
        # published before its ack, so the log keeps the order.
        started = asyncio.ensure_future(
            self.events.publish(
                CommandStarted(command_id=cid, project=p, executor=self.executor_name),
                "started",
                project=p,
                command_id=cid,
                event_id=lifecycle_id(cid, "started"),
            )
        )
        began = time.monotonic()
        batcher = (TtyBatcher if req.tty else OutputBatcher)(
            self.limits.max_line_chars,
            self.limits.batch_bytes,
            self.limits.cap_bytes,
            Redactor(list(secrets.values())),
        )
        try:
            with progress.reporting_to(progress.run_sink(self.events, req, started)):
                process = await self.backend.start(req, {**secrets, **extra_env})
        except Exception as exc:
            log.warning("command failed to start", command_id=cid, error=str(exc))
            with contextlib.suppress(RunAlreadyEnded):
                await started
                return await self._complete(req, outcomes.failed(str(exc)), began, None)
            return None
        except BaseException:
            started.cancel()
            raise
        control.process = process
        control.spawned.set()
        try:
            await started
        except RunAlreadyEnded:
            # Cancelled in the queue while this executor took it: stop what just spawned.
            log.info("run ended before it started", command_id=cid)
            process.signal_group(signal.SIGKILL)
            with contextlib.suppress(Exception):
                await process.wait()
            process.close()
            return None
        except BaseException:
            process.signal_group(signal.SIGKILL)
            raise
        queue = OutputQueue(
            BatchPublisher(self.events, req), cid, self.limits.buffer_bytes, self.spool
        )
        storing = asyncio.create_task(queue.run())
        try:
            result = await self._supervise(req, process, control, batcher, queue)
            ended = time.monotonic()
            # `completed` only once every line before it is stored.
            await storing
        finally:
            storing.cancel()
            queue.discard()
        return await self._complete(req, result, began, _totals(batcher, queue), ended)

    async def prepare(self, project: str, command_id: str, first_delivery: bool) -> Prepared:
        """The run's history and the project's secrets, read at once."""
        history, secrets = await asyncio.gather(
            self._history(project, command_id, first_delivery),
            self._secrets(project),
            return_exceptions=True,
        )
        if isinstance(history, BaseException):
            raise history
        if isinstance(secrets, SecretsUnreadable):
            return Prepared(history, {}, str(secrets))
        if isinstance(secrets, BaseException):
            raise secrets
        return Prepared(history, secrets)

    async def _history(self, p: str, cid: str, first_delivery: bool) -> _History:
        """What the log already holds of this run.

        A command's first delivery whose newest run event is its own `requested` (or
        nothing yet) has nothing behind it: one lookup. Anything else, and every
        redelivery, looks up each kind.
        """
        if first_delivery and await self.events.latest_kind(p, cid) in (None, "requested"):
            return _History()
        completed, started, cancel_requested = await asyncio.gather(
            self.events.exists(p, cid, "completed"),
            self.events.exists(p, cid, "started"),
            self.events.exists(p, cid, "cancel_requested"),
        )
        return _History(completed, started, cancel_requested)

    async def _secrets(self, project: str) -> dict[str, str]:
        return await self.secrets.for_project(project) if self.secrets else {}

    async def _supervise(
        self,
        req: CommandRequested,
        process: Process,
        control: RunControl,
        batcher: OutputBatcher,
        queue: OutputQueue,
    ) -> Outcome:
        """Run the command to its end; the output is stored (`queue.run`) meanwhile and
        after, at the broker's pace: the pipes are read whether or not it is there."""
        stopped: list[str] = []
        watchdog = asyncio.create_task(self._watchdog(req, process, control, stopped))
        pump = OutputPump(batcher, queue, self.limits.batch_age_s, self.limits.tail_idle_s)
        reading = asyncio.create_task(pump.run(process.output()))
        lost: ProcessLost | None = None
        try:
            try:
                returncode = await process.wait()
            except ProcessLost as exc:
                log.warning("command lost its process", command_id=req.command_id, error=str(exc))
                returncode, lost = -1, exc
            await end_of_output(req.command_id, process, pump, reading)
        except BaseException:
            reading.cancel()
            raise
        finally:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
        if lost is not None:
            return outcomes.failed(str(lost))
        return outcomes.from_returncode(
            returncode,
            timed_out="timeout" in stopped,
            cancelled="cancel" in stopped,
            cancel_reason=control.reason,
        )

    async def _watchdog(
        self, req: CommandRequested, process: Process, control: RunControl, stopped: list[str]
    ) -> None:
        try:
            await asyncio.wait_for(control.cancelled.wait(), req.timeout_s)
            stopped.append("cancel")
        except TimeoutError:
            stopped.append("timeout")
        process.signal_group(signal.SIGTERM)
        await asyncio.sleep(self.limits.kill_grace_s)
        process.signal_group(signal.SIGKILL)

    async def _complete(
        self,
        req: CommandRequested,
        result: Outcome,
        began: float,
        totals: _Totals | None,
        ended: float | None = None,
    ) -> Outcome:
        duration_ms = int(((ended or time.monotonic()) - began) * 1000) if began else 0
        totals = totals or _Totals()
        error = result.error
        if totals.dropped:
            dropped = (
                f"{totals.dropped} bytes of output were dropped: the broker was away "
                "and the executor's output spool was full"
            )
            error = f"{error}; {dropped}" if error else dropped
        await self.events.publish(
            CommandCompleted(
                command_id=req.command_id,
                project=req.project,
                exit_code=result.exit_code,
                reason=Reason(result.reason),
                duration_ms=duration_ms,
                error=error,
                lines=totals.lines,
                bytes=totals.bytes,
                truncated=totals.truncated,
                output_dropped_bytes=totals.dropped or None,
            ),
            "completed",
            project=req.project,
            command_id=req.command_id,
            event_id=lifecycle_id(req.command_id, "completed"),
        )
        log.info(
            "command completed",
            command_id=req.command_id,
            exit_code=result.exit_code,
            reason=result.reason,
            duration_ms=duration_ms,
        )
        return result


@dataclass(frozen=True)
class _Totals:
    """What `completed` says of the output: lines and bytes stored, and what was lost."""

    lines: int = 0
    bytes: int = 0
    truncated: bool = False
    dropped: int = 0


def _totals(batcher: OutputBatcher, queue: OutputQueue) -> _Totals:
    return _Totals(
        lines=queue.stored_lines,
        bytes=max(batcher.bytes - queue.dropped_bytes, 0),
        truncated=batcher.truncated,
        dropped=queue.dropped_bytes + batcher.dropped_bytes,
    )
