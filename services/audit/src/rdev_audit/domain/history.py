"""How a lifecycle event changes a command's history row."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rdev_audit.domain.entries import action_of, parse_time

# A later state never falls back to an earlier one, whatever order events arrive in.
STATUS_RANK = {"queued": 0, "running": 1, "completed": 2}


@dataclass(frozen=True)
class CommandChange:
    """Columns to set on the history row of `command_id`; `status` only moves forward."""

    command_id: str
    project: str
    status: str | None
    values: dict[str, Any] = field(default_factory=dict)


def later_status(current: str | None, proposed: str | None) -> str:
    if proposed is None:
        return current or "queued"
    if current is None:
        return proposed
    return proposed if STATUS_RANK[proposed] > STATUS_RANK.get(current, 0) else current


def command_change(event: Mapping[str, Any]) -> CommandChange | None:
    """The change a run lifecycle event makes, or None for any other event."""
    action = action_of(str(event.get("type", "")))
    raw = event.get("data")
    data: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    command_id, project = data.get("command_id"), data.get("project") or event.get("project")
    if not isinstance(command_id, str) or not isinstance(project, str):
        return None
    at = parse_time(event.get("time"))
    if action == "command.requested":
        values = {
            "command": data.get("command"),
            "priority": data.get("priority"),
            "actor": data.get("actor") or event.get("actor"),
            "client_ip": data.get("client_ip"),
            "timeout_s": data.get("timeout_s"),
            "requested_at": at,
        }
        return CommandChange(command_id, project, "queued", values)
    if action == "command.started":
        values = {"started_at": at, "executor": data.get("executor")}
        return CommandChange(command_id, project, "running", values)
    if action == "command.cancel_requested":
        return CommandChange(command_id, project, None, {"cancel_requested_at": at})
    if action == "command.completed":
        values = {
            "completed_at": at,
            "exit_code": data.get("exit_code"),
            "reason": data.get("reason"),
            "error": data.get("error"),
            "duration_ms": data.get("duration_ms"),
        }
        return CommandChange(command_id, project, "completed", values)
    return None
