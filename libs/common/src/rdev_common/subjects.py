"""NATS subject names: the one place that spells them."""

from __future__ import annotations

from rdev_common.events import Priority

COMMANDS_PREFIX = "rdev.commands"
RUNS_PREFIX = "rdev.runs"
ADMIN_PREFIX = "rdev.admin"
WEBHOOKS_PREFIX = "rdev.webhooks"

RUN_KINDS = ("requested", "started", "output", "completed", "cancel_requested")
LIFECYCLE_KINDS = ("requested", "started", "completed", "cancel_requested")


def command(priority: Priority | str, project: str, command_id: str) -> str:
    return f"{COMMANDS_PREFIX}.{Priority(priority).value}.{project}.{command_id}"


def commands_of_priority(priority: Priority | str) -> str:
    return f"{COMMANDS_PREFIX}.{Priority(priority).value}.*.*"


def run_event(project: str, command_id: str, kind: str) -> str:
    return f"{RUNS_PREFIX}.{project}.{command_id}.{kind}"


def run_events(project: str, command_id: str) -> str:
    """Every event of one run, in order."""
    return f"{RUNS_PREFIX}.{project}.{command_id}.*"


def project_run_events(project: str) -> str:
    return f"{RUNS_PREFIX}.{project}.*.*"


def any_run_event(kind: str) -> str:
    return f"{RUNS_PREFIX}.*.*.{kind}"


def admin(entity: str, action: str) -> str:
    return f"{ADMIN_PREFIX}.{entity}.{action}"


def webhook(webhook_id: str, kind: str) -> str:
    return f"{WEBHOOKS_PREFIX}.{webhook_id}.{kind}"


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
    return f"{RATE_LIMIT_PREFIX}.{bucket}.{policy}.{window}"
