"""Identifiers: UUIDv7 event and command ids, sortable by creation time."""

from __future__ import annotations

import re
import uuid

import uuid6

ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def new_id() -> str:
    """A new UUIDv7 as a string (time-ordered, safe as a NATS subject token)."""
    return str(uuid6.uuid7())


def is_slug(value: str) -> bool:
    """True when `value` can be a project id and a NATS subject token."""
    return bool(ID_RE.match(value))


def lifecycle_id(command_id: str, kind: str) -> str:
    """The fixed event id of a run's `started` or `completed`: the broker refuses a
    second one with the same id, whoever publishes it."""
    return str(uuid.uuid5(uuid.UUID(int=0), f"{command_id}.{kind}"))
