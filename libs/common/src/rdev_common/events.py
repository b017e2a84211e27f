"""The event contract: CloudEvents 1.0 envelopes around frozen, versioned payloads.

Every event rdev publishes is a CloudEvent in JSON structured mode, except command
output (`OutputBatch`), which is in binary mode: its payload is the text itself. The
payload models below are the public contract for internal subscribers; a change of
shape gets a new `type` version, never an in-place edit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal
from urllib.parse import quote, unquote

import orjson
from pydantic import BaseModel, ConfigDict, Field

from rdev_common.ids import new_id

SPEC_VERSION = "1.0"
TYPE_PREFIX = "dev.rdev."


class Priority(StrEnum):
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class Reason(StrEnum):
    """Why a run ended."""

    EXITED = "exited"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    LOST = "lost"
    ERROR = "error"


class EventData(BaseModel):
    """Base of every payload: immutable, unknown fields rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: ClassVar[str]
    version: ClassVar[int] = 1

    @classmethod
    def event_type(cls) -> str:
        return f"{TYPE_PREFIX}{cls.kind}.v{cls.version}"


class TtySize(BaseModel):
    """A terminal's size in character cells."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    cols: int = Field(ge=1, le=1000)
    rows: int = Field(ge=1, le=1000)


class CommandRequested(EventData):
    kind = "command.requested"
    command_id: str
    project: str
    command: str
    priority: Priority = Priority.NORMAL
    timeout_s: float | None = None
    workdir: str | None = None
    max_concurrency: int | None = None
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    actor: str | None = None
    client_ip: str | None = None
    idempotency_key: str | None = None
    # The project's Kubernetes spec (namespace, image, resources, env,
    # service_account, node_selector, workdir); set, the command runs in the
    # project's workspace pod instead of on the executor's host.
    kubernetes: dict[str, Any] | None = None
    # Interactive runs (docs/interactive.md): stdin kept open for input sent through
    # the api; with `tty`, the command runs in a pseudo-terminal of that size.
    stdin: bool = False
    tty: TtySize | None = None


class CommandStarted(EventData):
    kind = "command.started"
    command_id: str
    project: str
    executor: str
    attempt: int = 1


class CommandOutput(EventData):
    """A batch of consecutive lines of one stream, JSON structured: `…output.v1`.

    No longer published (output is `OutputBatch`, v2), but still read, so a run
    stored before the change replays as it did.

    `first_line` is the 1-based number of `lines[0]` in the run's combined log.
    `partial` lists indices of lines that were split because they were too long:
    the line at such an index continues in the next one. `cr` lists indices of lines
    ended by a bare carriage return (progress output): a terminal overwrites them
    with the next line.
    """

    kind = "command.output"
    command_id: str
    stream: Literal["stdout", "stderr"]
    first_line: int
    lines: list[str]
    partial: list[int] = Field(default_factory=list)
    cr: list[int] = Field(default_factory=list)


OUTPUT_TYPE = "dev.rdev.command.output.v2"
OUTPUT_CONTENT_TYPE = "text/plain; charset=utf-8"
# CloudEvents attributes of a binary-mode message travel as NATS headers with this prefix.
CE = "ce-"


@dataclass(frozen=True)
class OutputBatch:
    """A batch of consecutive lines of one stream: `dev.rdev.command.output.v2`.

    It travels in CloudEvents binary content mode: the lines, UTF-8 and joined by
    "\n", are the message's payload as the command wrote them, and the attributes
    are `ce-` headers (`stream`, `firstline`, and `partial` and `cr` as comma-separated
    indices and ranges of them: `0-41,43`). Nothing is escaped or parsed on the way:
    the executor publishes what it read and `/output` sends the payload on as it is.
    `partial` and `cr` mean what they mean in `CommandOutput`.
    """

    command_id: str
    stream: str
    first_line: int
    text: bytes
    partial: tuple[int, ...] = ()
    cr: tuple[int, ...] = ()

    @property
    def lines(self) -> list[str]:
        # The executor publishes valid UTF-8; a payload that is not still reads.
        return self.text.decode(errors="replace").split("\n")

    def message(
        self,
        *,
        source: str,
        project: str,
        event_id: str | None = None,
        traceparent: str | None = None,
    ) -> tuple[dict[str, str], bytes]:
        """The NATS headers and payload of this batch as a binary-mode CloudEvent."""
        headers = {
            f"{CE}specversion": SPEC_VERSION,
            f"{CE}id": event_id or new_id(),
            f"{CE}source": _header_value(source),
            f"{CE}type": OUTPUT_TYPE,
            f"{CE}subject": self.command_id,
            f"{CE}time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "content-type": OUTPUT_CONTENT_TYPE,
            f"{CE}project": project,
            f"{CE}stream": self.stream,
            f"{CE}firstline": str(self.first_line),
        }
        if self.partial:
            headers[f"{CE}partial"] = _ranges(self.partial)
        if self.cr:
            headers[f"{CE}cr"] = _ranges(self.cr)
        if traceparent:
            headers[f"{CE}traceparent"] = traceparent
        return headers, self.text

    @classmethod
    def from_message(cls, payload: bytes, headers: Mapping[str, str] | None) -> OutputBatch:
        """The batch of a stored output event, binary mode (v2) or JSON (v1, still read).

        Raises ValueError (or KeyError) for a message that is neither.
        """
        if headers and headers.get(f"{CE}type") == OUTPUT_TYPE:
            return cls(
                command_id=headers[f"{CE}subject"],
                stream=headers[f"{CE}stream"],
                first_line=int(headers[f"{CE}firstline"]),
                text=payload,
                partial=_indices(headers.get(f"{CE}partial")),
                cr=_indices(headers.get(f"{CE}cr")),
            )
        data = orjson.loads(payload)["data"]
        return cls(
            command_id=data["command_id"],
            stream=data["stream"],
            first_line=data["first_line"],
            text="\n".join(data["lines"]).encode(),
            partial=tuple(data.get("partial") or ()),
            cr=tuple(data.get("cr") or ()),
        )


def _ranges(indices: tuple[int, ...]) -> str:
    """Ascending indices as `a-b` for each run of consecutive ones, `a` for a single one
    (a progress bar's lines, each flagged `cr`, make one short range)."""
    if not indices:
        return ""
    parts: list[str] = []
    start = prev = indices[0]
    for i in (*indices[1:], None):
        if i is not None and i == prev + 1:
            prev = i
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if i is not None:
            start = prev = i
    return ",".join(parts)


def _indices(value: str | None) -> tuple[int, ...]:
    found: list[int] = []
    for part in value.split(",") if value else ():
        first, _, last = part.partition("-")
        found.extend(range(int(first), int(last or first) + 1))
    return tuple(found)


def structured(payload: bytes, headers: Mapping[str, str] | None) -> bytes:
    """The event of a NATS message as CloudEvents JSON (structured mode): the payload
    itself for one that is, and for a binary-mode one its `ce-` attributes with its
    text as `data`, a JSON string (so a replay prints one JSON event per line)."""
    if not headers or f"{CE}type" not in headers:
        return payload
    event: dict[str, Any] = {
        name[len(CE) :]: unquote(value) for name, value in headers.items() if name.startswith(CE)
    }
    event["datacontenttype"] = headers.get("content-type", OUTPUT_CONTENT_TYPE)
    event["data"] = payload.decode(errors="replace")
    return orjson.dumps(event)


# Printable ASCII but space, '"' and "%" stays as it is in a header value; the rest is
# percent-encoded (the CloudEvents HTTP binding's rule, which binary mode on NATS
# follows). Space must be encoded: NATS clients strip it from the ends of a value.
_HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '%"')


def _header_value(value: str) -> str:
    return quote(value, safe=_HEADER_SAFE)


class CommandCompleted(EventData):
    kind = "command.completed"
    command_id: str
    project: str
    exit_code: int
    reason: Reason
    duration_ms: int
    error: str | None = None
    lines: int = 0
    bytes: int = 0
    truncated: bool = False
    # Output the executor had to drop (the broker away and its spool full); absent
    # when none was, so readers of the earlier shape still read every other event.
    output_dropped_bytes: int | None = None


class CommandQueued(EventData):
    """A run still waits for an executor: where it stands in the queue.

    Published while someone watches the run (its event stream is open), once per
    position it reaches, so a watcher sees the queue move. `position` 1 is next;
    `estimate_s` is how long until it starts, judged from recent run times (None
    when there are none); `running` is how many runs hold executor slots now.
    """

    kind = "command.queued"
    command_id: str
    project: str
    position: int
    waiting_for: str = "waiting for an executor"
    estimate_s: float | None = None
    running: int = 0


class CommandProgress(EventData):
    """A started run still waits for its workspace: what it waits for now.

    Published by the executor while the run's Kubernetes workspace pod is not Ready
    (waiting for a node, pulling the image, creating the container), once per change,
    between the run's `started` and its first output. `phase` is one of `scheduling`,
    `pulling`, `starting` or `replacing`; `message` says it in words.
    """

    kind = "command.progress"
    command_id: str
    project: str
    phase: str
    message: str


class CommandCancelRequested(EventData):
    kind = "command.cancel_requested"
    command_id: str
    project: str
    actor: str | None = None


EVENT_TYPES: dict[str, type[EventData]] = {
    m.event_type(): m
    for m in (
        CommandRequested,
        CommandStarted,
        CommandOutput,
        CommandCompleted,
        CommandCancelRequested,
        CommandQueued,
        CommandProgress,
    )
}


RunLifecycle = CommandRequested | CommandStarted | CommandCompleted | CommandCancelRequested
RUN_LIFECYCLE: dict[str, type[RunLifecycle]] = {
    "requested": CommandRequested,
    "started": CommandStarted,
    "completed": CommandCompleted,
    "cancel_requested": CommandCancelRequested,
}


def decode_run_event(
    kind: str, data: bytes, headers: Mapping[str, str] | None = None
) -> OutputBatch | RunLifecycle:
    """The typed payload of an RDEV_RUNS message whose subject ends in `kind`
    (`subjects.run_kind`): an OutputBatch, or the lifecycle event. Fields this version
    does not know (a newer producer's) are ignored; a missing or malformed one raises
    pydantic's ValidationError, an unknown kind KeyError."""
    if kind == "output":
        return OutputBatch.from_message(data, headers)
    model = RUN_LIFECYCLE[kind]
    fields = orjson.loads(data)["data"]
    return model.model_validate({k: v for k, v in fields.items() if k in model.model_fields})


class CloudEvent(BaseModel):
    """The CloudEvents 1.0 envelope, JSON structured mode, with rdev's extensions."""

    model_config = ConfigDict(frozen=True, extra="allow")

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(default_factory=new_id)
    source: str
    type: str
    subject: str
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    datacontenttype: str = "application/json"
    data: dict[str, Any]
    project: str | None = None
    actor: str | None = None
    traceparent: str | None = None

    @classmethod
    def wrap(
        cls,
        payload: EventData,
        *,
        source: str,
        subject: str,
        project: str | None = None,
        actor: str | None = None,
        traceparent: str | None = None,
    ) -> CloudEvent:
        return cls(
            source=source,
            type=payload.event_type(),
            subject=subject,
            data=payload.model_dump(mode="json"),
            project=project,
            actor=actor,
            traceparent=traceparent,
        )

    def payload(self) -> EventData:
        """The typed payload; raises KeyError for an unknown event type."""
        return EVENT_TYPES[self.type].model_validate(self.data)

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> CloudEvent:
        return cls.model_validate_json(raw)

    @classmethod
    def from_message(cls, payload: bytes, headers: Mapping[str, str] | None) -> CloudEvent:
        """The event of a NATS message in either content mode. A binary-mode output
        batch comes back with its attributes and its text (a str) as `data`."""
        if not headers or f"{CE}type" not in headers:
            return cls.from_bytes(payload)
        batch = OutputBatch.from_message(payload, headers)
        return cls(
            id=headers[f"{CE}id"],
            source=unquote(headers[f"{CE}source"]),
            type=headers[f"{CE}type"],
            subject=headers[f"{CE}subject"],
            time=datetime.fromisoformat(headers[f"{CE}time"]),
            datacontenttype=headers.get("content-type", OUTPUT_CONTENT_TYPE),
            data={
                "command_id": batch.command_id,
                "stream": batch.stream,
                "first_line": batch.first_line,
                "text": batch.text.decode(errors="replace"),
                "partial": list(batch.partial),
                "cr": list(batch.cr),
            },
            project=headers.get(f"{CE}project"),
            traceparent=headers.get(f"{CE}traceparent"),
        )


# Admin events (RDEV_ADMIN, `rdev.admin.<entity>.<action>`): written to the api's outbox in
# the transaction of the change, published by the relay. They never carry a secret value or
# an API key secret: project secrets appear by name only, keys by id and display prefix.


class CommandPolicy(BaseModel):
    """Allow/deny patterns for a project's commands (glob, or `re:` + regular expression)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    allow: list[str] = Field(default_factory=list)
    deny: list[str] = Field(default_factory=list)


class ProjectSnapshot(EventData):
    """A project as stored after the change, without secret values."""

    project: str
    workdir: str | None = None
    kubernetes: dict[str, Any] | None = None
    env: dict[str, str] = Field(default_factory=dict)
    secret_names: list[str] = Field(default_factory=list)
    max_concurrency: int | None = None
    default_timeout_s: float | None = None
    command_policy: CommandPolicy = Field(default_factory=CommandPolicy)


class ProjectCreated(ProjectSnapshot):
    kind = "project.created"


class ProjectUpdated(ProjectSnapshot):
    kind = "project.updated"
    changed: list[str] = Field(default_factory=list)


class ProjectDeleted(EventData):
    kind = "project.deleted"
    project: str
    forced: bool = False


class ApiKeyCreated(EventData):
    kind = "api_key.created"
    key_id: str
    name: str
    prefix: str
    scopes: list[str]
    projects: list[str] | None = None
    allowed_ips: list[str] | None = None
    expires_at: datetime | None = None


class ApiKeyRevoked(EventData):
    kind = "api_key.revoked"
    key_id: str


class ApiKeyRotated(EventData):
    kind = "api_key.rotated"
    key_id: str
    prefix: str
    previous_valid_until: datetime | None = None


class ApiKeyUpdated(EventData):
    """Name, allowed addresses, expiry or rate limits changed (scopes and projects never do)."""

    kind = "api_key.updated"
    key_id: str
    changed: list[str]
    name: str
    allowed_ips: list[str] | None = None
    expires_at: datetime | None = None


ADMIN_EVENTS: tuple[type[EventData], ...] = (
    ProjectCreated,
    ProjectUpdated,
    ProjectDeleted,
    ApiKeyCreated,
    ApiKeyRevoked,
    ApiKeyRotated,
    ApiKeyUpdated,
)
EVENT_TYPES.update({m.event_type(): m for m in ADMIN_EVENTS})
