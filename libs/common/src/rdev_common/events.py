"""The event contract: CloudEvents 1.0 envelopes around frozen, versioned payloads.

Every event rdev publishes is a CloudEvent in JSON structured mode. The payload
models below are the public contract for internal subscribers; a change of shape
gets a new `type` version, never an in-place edit.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal

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


class CommandStarted(EventData):
    kind = "command.started"
    command_id: str
    project: str
    executor: str
    attempt: int = 1


class CommandOutput(EventData):
    """A batch of consecutive lines of one stream.

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


# Bytes a JSON string must escape, except the "\n" that separates lines.
_ESCAPED = bytes([*range(0x0A), *range(0x0B, 0x20)]) + b'"\\'


def lines_json(text: str) -> bytes:
    """The JSON array of the lines of `text` (joined by "\n"): `CommandOutput.lines`.

    Output is mostly plain text with nothing to escape: then the array is the text
    with its newlines turned into `","`, built in a few bulk operations (deleting
    the escaped bytes is how a scan for them runs at memory speed).
    """
    encoded = text.encode()
    if len(encoded.translate(None, _ESCAPED)) == len(encoded):
        return b'["' + encoded.replace(b"\n", b'","') + b'"]'
    return orjson.dumps(text.split("\n"))


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
    )
}


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

    def to_bytes(self, lines_json: bytes | None = None) -> bytes:
        """The JSON of the event; `lines_json`, if given, is `data.lines` already encoded."""
        if lines_json is None:
            return self.model_dump_json(exclude_none=True).encode()
        envelope = self.model_dump(mode="json", exclude_none=True)
        envelope["data"]["lines"] = orjson.Fragment(lines_json)
        return orjson.dumps(envelope)

    @classmethod
    def from_bytes(cls, raw: bytes) -> CloudEvent:
        return cls.model_validate_json(raw)


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
