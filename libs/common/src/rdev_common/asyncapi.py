"""AsyncAPI 3.0 document of rdev's NATS subjects, generated from the event models.

    python -m rdev_common.asyncapi > docs/asyncapi.json

The payload schemas are the pydantic models' JSON schemas, so the document cannot
drift from the code; a test regenerates it and compares. (FastStream can emit
AsyncAPI too, but only for handlers declared through a FastStream broker; rdev's
services use nats-py directly, so a FastStream app kept only for documentation
would be a second, unchecked description of the same subjects.)
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from rdev_common import run_input, streams, subjects
from rdev_common.events import (
    ADMIN_EVENTS,
    CloudEvent,
    CommandCancelRequested,
    CommandCompleted,
    CommandOutput,
    CommandProgress,
    CommandQueued,
    CommandRequested,
    CommandStarted,
    EventData,
)
from rdev_common.events import OUTPUT_CONTENT_TYPE as TEXT
from rdev_common.events import OUTPUT_TYPE as OUTPUT_V2
from rdev_common.webhook_events import ADMIN_ACTIONS, DeliveryAttempted, WebhookDisabled

CONTRACT_VERSION = "1.3.0"
REF = "#/components/schemas/{model}"


@dataclass(frozen=True)
class Channel:
    model: type[EventData]
    address: str
    stream: str
    description: str


def _run_channel(model: type[EventData], description: str) -> Channel:
    kind = model.kind.split(".", 1)[1]
    address = f"{subjects.RUNS_PREFIX}.{{project}}.{{command_id}}.{kind}"
    return Channel(model, address, streams.RUNS, description)


def channels() -> list[Channel]:
    """Every event type on the subject it is published on (or mirrored to)."""
    found = [
        Channel(
            CommandRequested,
            f"{subjects.COMMANDS_PREFIX}.{{priority}}.{{project}}.{{command_id}}",
            streams.COMMANDS,
            "A command was accepted. Mirrored server-side into RDEV_RUNS as "
            "`rdev.runs.{project}.{command_id}.requested` and into RDEV_LIFECYCLE.",
        ),
        _run_channel(
            CommandQueued,
            "The run still waits for an executor: its position and an estimate (RDEV_RUNS "
            "only; published while someone watches the run, once per position).",
        ),
        _run_channel(CommandStarted, "An executor started the command."),
        _run_channel(
            CommandProgress,
            "The started run still waits for its workspace (a Kubernetes pod not Ready: "
            "waiting for a node, pulling the image); RDEV_RUNS only, once per change.",
        ),
        _run_channel(
            CommandOutput,
            "A batch of output lines (RDEV_RUNS only): `…output.v2`, in CloudEvents binary "
            "mode (the text is the payload, the attributes are `ce-` headers). `…output.v1`, "
            "JSON structured, is no longer published but is still read.",
        ),
        _run_channel(CommandCompleted, "The run ended; exactly one per run."),
        _run_channel(CommandCancelRequested, "Someone asked to cancel the run."),
    ]
    admin = [*ADMIN_EVENTS, *ADMIN_ACTIONS.values()]
    for model in admin:
        entity, action = model.kind.split(".", 1)
        address = subjects.admin(entity, action)
        found.append(Channel(model, address, streams.ADMIN, f"Admin change: {model.kind}."))
    for model in (DeliveryAttempted, WebhookDisabled):
        kind = model.kind.split(".", 1)[1]
        address = f"{subjects.WEBHOOKS_PREFIX}.{{webhook_id}}.{kind}"
        found.append(Channel(model, address, streams.WEBHOOKS, f"Webhook event: {model.kind}."))
    return found


def _schema(model: type[BaseModel], defs: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template=REF)
    defs.update(schema.pop("$defs", {}))
    return schema


def _name(model: type[EventData]) -> str:
    return model.__name__[0].lower() + model.__name__[1:]


def _parameters(address: str) -> dict[str, Any]:
    names = [part[1:-1] for part in address.split(".") if part.startswith("{")]
    return {name: {"description": f"the {name.replace('_', ' ')} token"} for name in names}


def _message(model: type[EventData]) -> dict[str, Any]:
    envelope = {
        "allOf": [
            {"$ref": REF.format(model="CloudEvent")},
            {
                "type": "object",
                "properties": {
                    "type": {"const": model.event_type()},
                    "data": {"$ref": REF.format(model=model.__name__)},
                },
            },
        ]
    }
    return {
        "name": model.event_type(),
        "title": model.kind,
        "contentType": "application/json",
        "headers": {
            "type": "object",
            "properties": {
                "Nats-Msg-Id": {"type": "string", "description": "the event id (de-duplication)"},
                "traceparent": {"type": "string", "description": "W3C trace context"},
            },
        },
        "payload": envelope,
    }


# The headers of a binary-mode output message: always there, then when there is cause.
_OUTPUT_HEADERS = {
    "ce-specversion": "1.0",
    "ce-id": "the event id (UUIDv7), also in Nats-Msg-Id",
    "ce-source": "rdev/executor/<host>, percent-encoded outside printable ASCII",
    "ce-type": OUTPUT_V2,
    "ce-subject": "the command id",
    "ce-time": "RFC 3339, UTC",
    "content-type": TEXT,
    "ce-project": "the project id",
    "ce-stream": "stdout or stderr",
    "ce-firstline": "the 1-based number of the payload's first line in the run's log",
    "Nats-Msg-Id": "the event id (de-duplication)",
}
_OPTIONAL_OUTPUT_HEADERS = {
    "ce-partial": "indices of lines split for length (each continues in the next line); "
    "comma-separated, runs as a-b",
    "ce-cr": "indices of lines ended by a bare carriage return (progress output); "
    "comma-separated, runs as a-b",
    "ce-traceparent": "W3C trace context of the run",
    "traceparent": "W3C trace context of the run",
}


def _binary_output_message() -> dict[str, Any]:
    """`command.output` v2: the lines as the payload, attributes in headers."""
    described = {**_OUTPUT_HEADERS, **_OPTIONAL_OUTPUT_HEADERS}
    return {
        "name": OUTPUT_V2,
        "title": "command.output",
        "contentType": TEXT,
        "headers": {
            "type": "object",
            "required": list(_OUTPUT_HEADERS),
            "properties": {
                name: {"type": "string", "description": text} for name, text in described.items()
            },
        },
        "payload": {
            "type": "string",
            "description": 'The batch\'s lines, UTF-8, joined by "\\n", without a final newline.',
        },
    }


def _add_run_input(
    out_channels: dict[str, Any], operations: dict[str, Any], messages: dict[str, Any]
) -> None:
    """A run's input: core NATS requests (not stored in any stream), docs/interactive.md."""
    address = f"{subjects.INPUT_PREFIX}.{{project}}.{{command_id}}"
    headers = {
        run_input.OP: "data, eof, resize or signal",
        run_input.WRITER: "data and eof: the writer's id ([A-Za-z0-9_-]{1,64})",
        run_input.SEQ: "data and eof: the writer's message number, from 1",
    }
    messages["runInput"] = {
        "name": "rdev.run_input",
        "title": "run input",
        "contentType": "application/octet-stream",
        "headers": {
            "type": "object",
            "required": [run_input.OP],
            "properties": {k: {"type": "string", "description": v} for k, v in headers.items()},
        },
        "payload": {
            "type": "string",
            "description": f"data: up to {run_input.MAX_CHUNK} bytes for stdin; eof: empty; "
            'resize: {"cols": C, "rows": R}; signal: INT, TERM, HUP, QUIT or KILL',
        },
    }
    messages["runInputReply"] = {
        "name": "rdev.run_input.reply",
        "title": "run input reply",
        "payload": {
            "type": "object",
            "properties": {
                "status": {"enum": [s.value for s in run_input.Status]},
                "message": {"type": "string"},
                "bytes": {"type": "integer", "description": "input written to the run so far"},
            },
        },
    }
    out_channels["runInput"] = {
        "address": address,
        "description": "A run's input, api → the executor running it, as core NATS "
        "requests (no stream): only that executor answers, once the bytes are in the "
        "command's stdin.",
        "parameters": _parameters(address),
        "messages": {"runInput": {"$ref": "#/components/messages/runInput"}},
    }
    operations["send_runInput"] = {
        "action": "send",
        "channel": {"$ref": "#/channels/runInput"},
        "summary": "Write to a run's stdin, close it, resize its terminal or signal it",
        "reply": {"messages": [{"$ref": "#/components/messages/runInputReply"}]},
    }


def document() -> dict[str, Any]:
    defs: dict[str, Any] = {}
    schemas: dict[str, Any] = {"CloudEvent": _schema(CloudEvent, defs)}
    out_channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for channel in channels():
        name = _name(channel.model)
        schemas[channel.model.__name__] = _schema(channel.model, defs)
        messages[name] = _message(channel.model)
        out_channels[name] = {
            "address": channel.address,
            "description": f"{channel.description} Stream: {channel.stream}.",
            "parameters": _parameters(channel.address),
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
            "x-rdev-stream": channel.stream,
        }
        operations[f"receive_{name}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{name}"},
            "summary": f"Subscribe to {channel.model.kind}",
        }
    # Output is published as v2 (binary mode); v1 stays documented for stored history.
    messages["commandOutputV2"] = _binary_output_message()
    out_channels["commandOutput"]["messages"] = {
        name: {"$ref": f"#/components/messages/{name}"}
        for name in ("commandOutputV2", "commandOutput")
    }
    operations["receive_commandOutput"]["summary"] = "Subscribe to command.output (v2 and v1)"
    _add_run_input(out_channels, operations, messages)
    schemas.update(defs)
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "rdev events",
            "version": CONTRACT_VERSION,
            "description": (
                "CloudEvents 1.0 that rdev publishes on NATS JetStream: JSON structured mode, "
                "but for command output, which is in binary mode (its text is the payload). "
                "Each event type carries its own version in `type` (…v1); a change of shape "
                "is a new type, never an edit. See docs/events.md."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "nats": {"host": "localhost:4222", "protocol": "nats", "description": "RDEV_NATS_URL"}
        },
        "channels": out_channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }


def main() -> None:
    sys.stdout.write(json.dumps(document(), indent=2, sort_keys=False) + "\n")


if __name__ == "__main__":
    main()
