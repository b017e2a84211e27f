"""NATS subject names: the one place that spells them."""

from __future__ import annotations

import re

from rdev_common.errors import ValidationFailed
from rdev_common.events import Priority

COMMANDS_PREFIX = "rdev.commands"
RUNS_PREFIX = "rdev.runs"
ADMIN_PREFIX = "rdev.admin"
WEBHOOKS_PREFIX = "rdev.webhooks"
# A run's standard input, api → executor, core NATS request/reply (docs/interactive.md).
INPUT_PREFIX = "rdev.input"

RUN_KINDS = (
    "requested",
    "queued",
    "started",
    "progress",
    "output",
    "completed",
    "cancel_requested",
)
LIFECYCLE_KINDS = ("requested", "started", "completed", "cancel_requested")

# What no token taken from outside may hold: the token separator, the wildcards,
# whitespace and control characters (NATS splits or refuses on them).
_UNSAFE = re.compile(r"[.*>\s\x00-\x1f\x7f]")
MAX_TOKEN_CHARS = 128


class InvalidToken(ValidationFailed):
    """A value that cannot be one token of a subject: refused, never sent."""


def token(value: str, field: str = "id") -> str:
    """`value` as one literal subject token; raises InvalidToken for anything else.

    Every builder below passes each variable part through here, so an id that reached
    a subject unchecked by its route still cannot become a wildcard or a second token.
    """
    if not value or len(value) > MAX_TOKEN_CHARS or _UNSAFE.search(value):
        raise InvalidToken(f"{field} {value[:80]!r} is not a valid id", field=field)
    return value


def command(priority: Priority | str, project: str, command_id: str) -> str:
    level = Priority(priority).value
    return (
        f"{COMMANDS_PREFIX}.{level}.{token(project, 'project')}.{token(command_id, 'command_id')}"
    )


def command_any_priority(project: str | None, command_id: str) -> str:
    """The request of one command whatever its priority (and project, when None)."""
    where = token(project, "project") if project is not None else "*"
    return f"{COMMANDS_PREFIX}.*.{where}.{token(command_id, 'command_id')}"


def project_commands(project: str) -> str:
    """Every command request of one project."""
    return f"{COMMANDS_PREFIX}.*.{token(project, 'project')}.*"


def commands_of_priority(priority: Priority | str) -> str:
    return f"{COMMANDS_PREFIX}.{Priority(priority).value}.*.*"


def run_event(project: str, command_id: str, kind: str) -> str:
    run = f"{token(project, 'project')}.{token(command_id, 'command_id')}"
    return f"{RUNS_PREFIX}.{run}.{token(kind, 'kind')}"


def project_runs_of_kind(project: str, kind: str) -> str:
    """One kind of event (`requested`, `completed`) of every run of a project."""
    return f"{RUNS_PREFIX}.{token(project, 'project')}.*.{token(kind, 'kind')}"


def run_events(project: str, command_id: str) -> str:
    """Every event of one run, in order."""
    return f"{RUNS_PREFIX}.{token(project, 'project')}.{token(command_id, 'command_id')}.*"


def project_run_events(project: str) -> str:
    return f"{RUNS_PREFIX}.{token(project, 'project')}.*.*"


def any_run_event(kind: str) -> str:
    return f"{RUNS_PREFIX}.*.*.{token(kind, 'kind')}"


def run_input(project: str, command_id: str) -> str:
    """Where the api sends one run's input; the executor running it answers."""
    return f"{INPUT_PREFIX}.{token(project, 'project')}.{token(command_id, 'command_id')}"


def any_run_input() -> str:
    return f"{INPUT_PREFIX}.*.*"


def parse_input_subject(subject: str) -> tuple[str, str]:
    """(project, command_id) of an input subject; ValueError for another."""
    prefix, project, command_id = subject.rsplit(".", 2)
    if prefix != INPUT_PREFIX:
        raise ValueError(f"not an input subject: {subject[:80]!r}")
    return project, command_id


def admin(entity: str, action: str) -> str:
    return f"{ADMIN_PREFIX}.{token(entity, 'entity')}.{token(action, 'action')}"


def webhook(webhook_id: str, kind: str) -> str:
    return f"{WEBHOOKS_PREFIX}.{token(webhook_id, 'webhook_id')}.{token(kind, 'kind')}"


def run_kind(subject: str) -> str:
    """The kind (`output`, `completed` …) of a run subject: its last token."""
    return parse_run_subject(subject)[2]


def parse_command_subject(subject: str) -> tuple[Priority, str, str]:
    """(priority, project, command_id) of a command subject; ValueError for another."""
    prefix, priority, project, command_id = subject.rsplit(".", 3)
    if prefix != COMMANDS_PREFIX:
        raise ValueError(f"not a command subject: {subject[:80]!r}")
    return Priority(priority), project, command_id


def command_id_of(subject: str) -> str:
    """The command id of a command subject (a key of RDEV_COMMANDS' subject index)."""
    return parse_command_subject(subject)[2]


def admin_entity(subject: str) -> str:
    """The entity (`project`, `api_key` …) of an admin subject; ValueError for another."""
    prefix, entity, _ = subject.rsplit(".", 2)
    if prefix != ADMIN_PREFIX:
        raise ValueError(f"not an admin subject: {subject[:80]!r}")
    return entity


def webhook_event(webhook_id: str, event_kind: str) -> str:
    """The RDEV_WEBHOOKS subject of a webhook event kind (`webhook.attempt`)."""
    return webhook(webhook_id, event_kind.rsplit(".", 1)[1])


def parse_run_subject(subject: str) -> tuple[str, str, str]:
    """(project, command_id, kind) of a run subject."""
    _, _, project, command_id, kind = subject.split(".", 4)
    return project, command_id, kind


RATE_LIMIT_PREFIX = "rdev.ratelimit"


def admin_of(event_kind: str) -> str:
    """The RDEV_ADMIN subject of an admin event kind (`api_key.revoked`)."""
    entity, action = event_kind.split(".", 1)
    return admin(entity, action)


def rate_limit(bucket: str, policy: str, window: int) -> str:
    """One counter per (who, policy, window): `bucket` is a key id or `ip-<address>`."""
    return f"{RATE_LIMIT_PREFIX}.{token(bucket, 'bucket')}.{token(policy, 'policy')}.{window}"
