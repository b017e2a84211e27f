"""The run use case: one command.requested in, started → output… → exactly one completed out."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import structlog

from rdev_common.events import (
    CommandCompleted,
    CommandRequested,
    CommandStarted,
    OutputBatch,
    Reason,
)
from rdev_executor.domain import outcome as outcomes
from rdev_executor.domain.outcome import Outcome
from rdev_executor.domain.output import Batch, OutputBatcher
from rdev_executor.domain.redaction import Redactor
from rdev_executor.service_layer.ports import (
    Backend,
    Chunk,
    EventLog,
    PayloadTooLarge,
    Process,
    ProcessLost,
    SecretSource,
    SecretsUnreadable,
)

log = structlog.get_logger()

# Output still open this long after the shell exited (a background child holding
# the pipe) is cut off by killing the process group.
EOF_GRACE_S = 2.0


async def _arrives_soon(pending: asyncio.Future[Chunk]) -> bool:
    """True if a chunk read from the pipe is a few event-loop turns from delivery.

    On a busy machine a timer can fire before data the pipe already holds has made
    its way through the reader to here; an unterminated line must not be sent as a
    partial piece then.
    """
    for _ in range(8):
        await asyncio.sleep(0)
        if pending.done():
            return True
    return False


@dataclass(frozen=True)
class Limits:
    kill_grace_s: float
    batch_bytes: int
    batch_age_s: float
    max_line_chars: int
    cap_bytes: int
    tail_idle_s: float = 1.0


@dataclass
class RunControl:
    """Handle on a run in progress, for cancellation."""

    cancelled: asyncio.Event = field(default_factory=asyncio.Event)


def lifecycle_id(command_id: str, kind: str) -> str:
    """Deterministic id of a run's started/completed event: the broker refuses a second one."""
    return str(uuid.uuid5(uuid.UUID(int=0), f"{command_id}.{kind}"))


@dataclass
class _OutputSender:
    """Publishes a run's output batches in order with one in flight, so the next
    batch is read and made while the broker stores the last one."""

    events: EventLog
    req: CommandRequested
    in_flight: asyncio.Future[int] | None = None

    async def send(self, batches: list[Batch]) -> None:
        for b in batches:
            await self.drain()
            self.in_flight = asyncio.ensure_future(self._publish(b))

    async def _publish(self, b: Batch) -> int:
        """Store one batch; one the broker finds too large goes as two halves, in order
        (a batch of its usual size never is, but one of many flagged lines, listed in
        its headers, or one read under a small broker limit can be)."""
        try:
            return await self.events.publish_output(
                OutputBatch(
                    command_id=self.req.command_id,
                    stream=b.stream,
                    first_line=b.first_line,
                    text=b.text.encode(),
                    partial=tuple(b.partial),
                    cr=tuple(b.cr),
                ),
                project=self.req.project,
            )
        except PayloadTooLarge:
            if b.count < 2:
                raise
            first, second = b.halves()
            await self._publish(first)
            return await self._publish(second)

    async def drain(self) -> None:
        """Wait until every batch sent is stored."""
        if self.in_flight is not None:
            in_flight, self.in_flight = self.in_flight, None
            await in_flight

    def cancel(self) -> None:
        if self.in_flight is not None:
            self.in_flight.cancel()


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
        batcher = OutputBatcher(
            self.limits.max_line_chars,
            self.limits.batch_bytes,
            self.limits.cap_bytes,
            Redactor(list(secrets.values())),
        )
        try:
            process = await self.backend.start(req, {**secrets, **extra_env})
        except Exception as exc:
            log.warning("command failed to start", command_id=cid, error=str(exc))
            await started
            return await self._complete(req, outcomes.failed(str(exc)), began, batcher)
        except BaseException:
            started.cancel()
            raise
        try:
            await started
        except BaseException:
            process.signal_group(signal.SIGKILL)
            raise
        result = await self._supervise(req, process, control, batcher)
        return await self._complete(req, result, began, batcher)

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
        self, req: CommandRequested, process: Process, control: RunControl, batcher: OutputBatcher
    ) -> Outcome:
        stopped: list[str] = []
        watchdog = asyncio.create_task(self._watchdog(req, process, control, stopped))
        pump = asyncio.create_task(self._pump(req, process.output(), batcher))
        lost: ProcessLost | None = None
        try:
            try:
                returncode = await process.wait()
            except ProcessLost as exc:
                log.warning("command lost its process", command_id=req.command_id, error=str(exc))
                returncode, lost = -1, exc
            try:
                await asyncio.wait_for(asyncio.shield(pump), EOF_GRACE_S)
            except TimeoutError:
                process.signal_group(signal.SIGKILL)
                try:
                    await asyncio.wait_for(asyncio.shield(pump), EOF_GRACE_S)
                except TimeoutError:
                    # Held open by a process outside the group (it left with setsid):
                    # stop reading, or the run would never end.
                    log.warning("output still open after the kill", command_id=req.command_id)
                    process.close()
                    await pump
        finally:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
        if lost is not None:
            return outcomes.failed(str(lost))
        return outcomes.from_returncode(
            returncode, timed_out="timeout" in stopped, cancelled="cancel" in stopped
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

    async def _pump(
        self, req: CommandRequested, chunks: AsyncIterator[Chunk], batcher: OutputBatcher
    ) -> None:
        """Read, batch and publish output; reading and batching overlap publishing."""
        sender = _OutputSender(self.events, req)
        try:
            await self._pump_into(sender, chunks, batcher)
            await sender.drain()
        except BaseException:
            sender.cancel()
            raise

    async def _pump_into(
        self, sender: _OutputSender, chunks: AsyncIterator[Chunk], batcher: OutputBatcher
    ) -> None:
        age, tail_idle = self.limits.batch_age_s, self.limits.tail_idle_s
        pending: asyncio.Future[Chunk] = asyncio.ensure_future(anext(chunks))
        opened_at = last_read = time.monotonic()
        while True:
            # An open batch goes out `age` after it opened; an unterminated line (a
            # prompt, a progress bar) only after the output has been idle `tail_idle`,
            # since a piece sent early must be flagged partial and ended later.
            deadlines = []
            if batcher.open_batch_size:
                deadlines.append(opened_at + age)
            if batcher.has_tail:
                deadlines.append(last_read + tail_idle)
            wait_s = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            done, _ = await asyncio.wait({pending}, timeout=wait_s)
            if not done:
                idle = time.monotonic() - last_read >= tail_idle
                if idle and await _arrives_soon(pending):
                    continue  # the rest of the line was already on its way
                await sender.send(batcher.flush(tails=idle))
                opened_at = time.monotonic()
                continue
            try:
                chunk = pending.result()
            except StopAsyncIteration:
                break
            pending = asyncio.ensure_future(anext(chunks))
            if batcher.open_batch_size == 0:
                opened_at = time.monotonic()
            last_read = time.monotonic()
            await sender.send(batcher.feed(chunk.stream, chunk.data))
        await sender.send(batcher.finish())

    async def _complete(
        self, req: CommandRequested, result: Outcome, began: float, batcher: OutputBatcher | None
    ) -> Outcome:
        duration_ms = int((time.monotonic() - began) * 1000) if began else 0
        await self.events.publish(
            CommandCompleted(
                command_id=req.command_id,
                project=req.project,
                exit_code=result.exit_code,
                reason=Reason(result.reason),
                duration_ms=duration_ms,
                error=result.error,
                lines=batcher.lines if batcher else 0,
                bytes=batcher.bytes if batcher else 0,
                truncated=batcher.truncated if batcher else False,
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
