"""The command log on JetStream: requests go to RDEV_COMMANDS, state is read back by direct get."""

from __future__ import annotations

import asyncio
from datetime import datetime

import structlog
from nats.errors import NoRespondersError
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import (
    APIError,
    KeyWrongLastSequenceError,
    NoStreamResponseError,
    NotFoundError,
    ServiceUnavailableError,
)
from nats.js.kv import KeyValue

from rdev_api.service_layer.ports import CommandState, Submitted
from rdev_common import errors, streams, subjects
from rdev_common.events import (
    CloudEvent,
    CommandCancelRequested,
    CommandCompleted,
    CommandRequested,
)
from rdev_common.ids import lifecycle_id
from rdev_common.telemetry import publish_span

log = structlog.get_logger()

SOURCE = "rdev/api"
# JetStream's error for a publish whose expected last sequence does not hold.
WRONG_LAST_SEQUENCE = 10071
# Before anything of the run is stored but its request and a cancel, the run may be
# ended here; its request reaches RDEV_RUNS (a stream source) within moments.
NOT_STARTED = ("requested", "cancel_requested", "queued")
END_ATTEMPTS = 40
END_RETRY_S = 0.05
# What a stream answers while it has no leader (a node of a cluster died and its
# replicas elect another, for a few seconds), or what a publish meets in the meantime.
NOT_STORED_YET = (
    TimeoutError,  # nats.errors.TimeoutError included
    NoRespondersError,
    NoStreamResponseError,
    ServiceUnavailableError,
)


class NatsCommandLog:
    def __init__(self, js: JetStreamContext, store_deadline_s: float = 20.0) -> None:
        self.js = js
        # How long a request waits for the broker to store it before the client gets a 503.
        self.store_deadline_s = store_deadline_s
        self._claims: KeyValue | None = None

    async def _store(
        self, subject: str, payload: bytes, headers: dict[str, str], stream: str
    ) -> PubAck:
        """Publish until the stream stores it: the same bytes and Nats-Msg-Id every time, so
        the stream keeps one copy however many attempts reached it. A stream electing a new
        leader (a cluster node died) answers nothing for a few seconds; past the deadline
        the request fails as unavailable (503), and a retry with the same Idempotency-Key
        is safe."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.store_deadline_s
        delay = 0.1
        while True:
            remaining = deadline - loop.time()
            try:
                return await self.js.publish(
                    subject,
                    payload,
                    headers=headers,
                    stream=stream,
                    timeout=max(0.5, min(5.0, remaining)),
                )
            except NOT_STORED_YET as exc:
                if loop.time() + delay >= deadline:
                    raise errors.Unavailable(
                        f"the broker did not store the event within {self.store_deadline_s:g} s"
                    ) from exc
                log.warning("event not stored yet, retrying", subject=subject, error=repr(exc))
                await asyncio.sleep(delay)
                delay = min(2 * delay, 1.0)

    async def request(
        self, event: CommandRequested, event_id: str, traceparent: str | None
    ) -> Submitted:
        subject = subjects.command(event.priority, event.project, event.command_id)
        # The context comes from the current span (the HTTP server span, itself a child of
        # an incoming `traceparent`); the argument is the fallback when tracing is off.
        with publish_span(subject, CommandRequested.kind) as carrier:
            traceparent = carrier.get("traceparent", traceparent)
            envelope = CloudEvent.wrap(
                event,
                source=SOURCE,
                subject=event.command_id,
                project=event.project,
                actor=event.actor,
                traceparent=traceparent,
            ).model_copy(update={"id": event_id})
            headers = {**carrier, "Nats-Msg-Id": event_id}
            if traceparent:
                headers["traceparent"] = traceparent
            ack = await self._store(subject, envelope.to_bytes(), headers, streams.COMMANDS)
        return Submitted(command_id=event.command_id, duplicate=bool(ack.duplicate))

    async def claim(self, token: str, command_id: str) -> str:
        # Bound once: binding the bucket is a stream-info round trip.
        kv = self._claims = self._claims or await self.js.key_value(streams.IDEMPOTENCY_BUCKET)
        try:
            await kv.create(token, command_id.encode())
            return command_id
        except KeyWrongLastSequenceError:
            entry = await kv.get(token)
            return (entry.value or b"").decode() or command_id

    async def project_command_ids(self, project: str) -> list[str]:
        info = await self.js.stream_info(
            streams.COMMANDS, subjects_filter=subjects.project_commands(project)
        )
        return [subjects.command_id_of(subject) for subject in (info.state.subjects or {})]

    async def cancel(self, event: CommandCancelRequested) -> None:
        envelope = CloudEvent.wrap(
            event, source=SOURCE, subject=event.command_id, project=event.project, actor=event.actor
        )
        await self._store(
            subjects.run_event(event.project, event.command_id, "cancel_requested"),
            envelope.to_bytes(),
            {"Nats-Msg-Id": envelope.id},
            streams.RUNS,
        )

    async def end_before_start(self, event: CommandCompleted) -> bool:
        """Store `completed` only if the run's newest event is still one of NOT_STARTED
        and its request is in RDEV_RUNS, so no executor's `started` comes between (the
        executor's `started`, in turn, is refused once a `completed` exists)."""
        cid, project = event.command_id, event.project
        every = subjects.run_events(project, cid)
        envelope = CloudEvent.wrap(event, source=SOURCE, subject=cid, project=project)
        envelope = envelope.model_copy(update={"id": lifecycle_id(cid, "completed")})
        for _ in range(END_ATTEMPTS):
            try:
                last = await self.js.get_last_msg(streams.RUNS, every, direct=True)
                await self.js.get_last_msg(
                    streams.RUNS, subjects.run_event(project, cid, "requested"), direct=True
                )
            except NotFoundError:
                await asyncio.sleep(END_RETRY_S)  # the request is not copied over yet
                continue
            if (last.subject or "").rsplit(".", 1)[1] not in NOT_STARTED:
                return False
            headers = {
                "Nats-Msg-Id": envelope.id,
                "Nats-Expected-Last-Subject-Sequence": str(last.seq),
                "Nats-Expected-Last-Subject-Sequence-Subject": every,
            }
            try:
                await self.js.publish(
                    subjects.run_event(project, cid, "completed"),
                    envelope.to_bytes(),
                    headers=headers,
                    stream=streams.RUNS,
                )
                return True
            except APIError as exc:
                if exc.err_code != WRONG_LAST_SEQUENCE:
                    raise
        return False

    async def _last(self, stream: str, subject: str) -> CloudEvent | None:
        try:
            msg = await self.js.get_last_msg(stream, subject, direct=True)
        except NotFoundError:
            return None
        return CloudEvent.from_bytes(msg.data or b"")

    async def request_of(self, command_id: str) -> CommandRequested | None:
        requested = await self._last(
            streams.COMMANDS, f"{subjects.COMMANDS_PREFIX}.*.*.{command_id}"
        )
        return CommandRequested.model_validate(requested.data) if requested else None

    async def state(self, command_id: str, project: str | None = None) -> CommandState | None:
        """The command's state from its events; with `project` known, all three at once."""
        requested_subject = subjects.command_any_priority(project, command_id)
        if project is None:
            requested = await self._last(streams.COMMANDS, requested_subject)
            if requested is None:
                return None
            req = CommandRequested.model_validate(requested.data)
            started, completed = await asyncio.gather(
                self._last(streams.RUNS, subjects.run_event(req.project, command_id, "started")),
                self._last(streams.RUNS, subjects.run_event(req.project, command_id, "completed")),
            )
        else:
            requested, started, completed = await asyncio.gather(
                self._last(streams.COMMANDS, requested_subject),
                self._last(streams.RUNS, subjects.run_event(project, command_id, "started")),
                self._last(streams.RUNS, subjects.run_event(project, command_id, "completed")),
            )
            if requested is None:
                return None
            req = CommandRequested.model_validate(requested.data)
        return _state(req, requested.time, started, completed)


def _state(
    req: CommandRequested,
    requested_at: datetime,
    started: CloudEvent | None,
    completed: CloudEvent | None,
) -> CommandState:
    status = "completed" if completed else "running" if started else "queued"
    done = CommandCompleted.model_validate(completed.data) if completed else None
    return CommandState(
        id=req.command_id,
        project=req.project,
        command=req.command,
        priority=req.priority,
        status=status,
        requested_at=requested_at,
        timeout_s=req.timeout_s,
        started_at=started.time if started else None,
        completed_at=completed.time if completed else None,
        exit_code=done.exit_code if done else None,
        reason=done.reason.value if done else None,
        duration_ms=done.duration_ms if done else None,
        error=done.error if done else None,
        stdin=req.stdin,
        tty=req.tty,
    )
