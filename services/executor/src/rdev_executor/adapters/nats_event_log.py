"""Publishes run events to RDEV_RUNS, retrying through broker outages without duplicates."""

from __future__ import annotations

import asyncio

import structlog
from nats.errors import ConnectionClosedError
from nats.js import JetStreamContext
from nats.js.errors import APIError, NotFoundError

from rdev_common import streams, subjects
from rdev_common.events import CloudEvent, EventData, OutputBatch
from rdev_common.telemetry import trace_headers
from rdev_executor.service_layer.ports import PayloadTooLarge, RunAlreadyEnded

log = structlog.get_logger()

RETRY_S = 0.25
PUBLISH_TIMEOUT_S = 2.0
# Room for the NATS headers (trace context, message id) within the broker's max_payload,
# at least: an output batch's headers are counted, and may be longer.
HEADERS_ALLOWANCE = 1024
# JetStream stores a message's headers only up to this size (the block's length is a u16).
MAX_HEADER_BYTES = 65535
# JetStream's error codes for a message over the stream's max_msg_size, and for
# headers over MAX_HEADER_BYTES.
MESSAGE_TOO_LARGE = 10054
HEADERS_TOO_LARGE = 10097
# ... and for a publish whose expected last sequence does not hold.
WRONG_LAST_SEQUENCE = 10071


def _too_large(payload: bytes, subject: str) -> PayloadTooLarge:
    return PayloadTooLarge(f"{len(payload)} bytes for {subject}")


class NatsEventLog:
    def __init__(self, js: JetStreamContext, source: str, max_payload: int = 1024 * 1024) -> None:
        self.js = js
        self.source = source
        self.max_payload = max_payload  # the broker's and RDEV_RUNS's limit, the lower

    async def publish(
        self,
        event: EventData,
        kind: str,
        *,
        project: str,
        command_id: str,
        event_id: str | None = None,
    ) -> int:
        # The current span's context travels in the CloudEvent and the headers, so the
        # consumers of this event (webhooks, audit) continue the run's trace.
        carrier = trace_headers()
        envelope = CloudEvent.wrap(
            event,
            source=self.source,
            subject=command_id,
            project=project,
            traceparent=carrier.get("traceparent"),
        )
        if event_id:
            envelope = envelope.model_copy(update={"id": event_id})
        headers = {**carrier, "Nats-Msg-Id": envelope.id}
        if kind == "started":
            # Stored only while the run has no `completed`: a run cancelled in the
            # queue (the api completes it at once) never starts.
            headers["Nats-Expected-Last-Subject-Sequence"] = "0"
            headers["Nats-Expected-Last-Subject-Sequence-Subject"] = subjects.run_event(
                project, command_id, "completed"
            )
        return await self._store(
            subjects.run_event(project, command_id, kind), envelope.to_bytes(), headers
        )

    async def publish_output(self, batch: OutputBatch, *, project: str) -> int:
        carrier = trace_headers()
        headers, payload = batch.message(
            source=self.source, project=project, traceparent=carrier.get("traceparent")
        )
        headers.update(carrier, **{"Nats-Msg-Id": headers["ce-id"]})
        return await self._store(
            subjects.run_event(project, batch.command_id, "output"), payload, headers
        )

    async def _store(self, subject: str, payload: bytes, headers: dict[str, str]) -> int:
        # "NATS/1.0\r\n", "name: value\r\n" each, "\r\n" (values are ASCII).
        header_bytes = 12 + sum(len(k) + len(v) + 4 for k, v in headers.items())
        if header_bytes > MAX_HEADER_BYTES:
            raise PayloadTooLarge(f"{header_bytes} bytes of headers for {subject}")
        if len(payload) + max(header_bytes, HEADERS_ALLOWANCE) > self.max_payload:
            raise _too_large(payload, subject)
        # The same bytes and Nats-Msg-Id on every attempt: a retry after a lost ack
        # is de-duplicated by the broker, so a line is never stored twice.
        while True:
            try:
                ack = await self.js.publish(
                    subject,
                    payload,
                    headers=headers,
                    stream=streams.RUNS,
                    timeout=PUBLISH_TIMEOUT_S,
                )
                return int(ack.seq)
            except ConnectionClosedError:
                raise
            except Exception as exc:  # timeouts and "no responders" while the broker is away
                if isinstance(exc, APIError) and exc.err_code in (
                    MESSAGE_TOO_LARGE,
                    HEADERS_TOO_LARGE,
                ):
                    raise _too_large(payload, subject) from exc  # a limit below ours
                if isinstance(exc, APIError) and exc.err_code == WRONG_LAST_SEQUENCE:
                    raise RunAlreadyEnded(subject) from exc
                log.warning("publish failed, retrying", subject=subject, error=repr(exc))
                await asyncio.sleep(RETRY_S)

    async def exists(self, project: str, command_id: str, kind: str) -> bool:
        return await self._last_subject(subjects.run_event(project, command_id, kind)) is not None

    async def latest_kind(self, project: str, command_id: str) -> str | None:
        subject = await self._last_subject(subjects.run_events(project, command_id))
        return subjects.run_kind(subject) if subject else None

    async def _last_subject(self, subject: str) -> str | None:
        """The subject of the newest message matching `subject`, None if there is none."""
        while True:
            try:
                msg = await self.js.get_last_msg(streams.RUNS, subject, direct=True)
                return msg.subject
            except NotFoundError:
                return None
            except ConnectionClosedError:
                raise
            except Exception as exc:
                log.warning("lookup failed, retrying", error=repr(exc))
                await asyncio.sleep(RETRY_S)
