"""What an event says for the audit trail: who did what to which target, with what outcome.

Run lifecycle events have known shapes. Admin and webhook events are read
generically from the CloudEvents envelope (action from `type`, target from
`subject`, actor from the `actor` extension), so a new admin event type is
audited without a change here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from rdev_common.audit import AuditContent, canonical_json

TYPE_PATTERN = re.compile(r"^dev\.rdev\.(?P<action>.+?)(?:\.v\d+)?$")
# Never copied into an audit row, whatever an event carries.
SENSITIVE = re.compile(r"secret|password|token|hash|private|credential", re.IGNORECASE)
NOT_AUDITED = frozenset({"command.output"})
# Of RDEV_WEBHOOKS only endpoint state changes are audited; delivery attempts are not.
WEBHOOK_STATE = (".disabled", ".enabled")
SUCCESS, FAILURE = "success", "failure"


def action_of(event_type: str) -> str:
    """`dev.rdev.command.requested.v1` → `command.requested`."""
    match = TYPE_PATTERN.match(event_type)
    return match.group("action") if match else event_type


def parse_time(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return datetime.fromtimestamp(0, UTC)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime.fromtimestamp(0, UTC)


def public(data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` without anything that looks like a secret, at any depth."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if SENSITIVE.search(key):
            continue
        out[key] = public(value) if isinstance(value, Mapping) else value
    return out


def _command_details(action: str, data: Mapping[str, Any]) -> dict[str, Any]:
    keep = {
        "command.requested": ("command", "priority", "timeout_s", "cwd", "idempotency_key"),
        "command.started": ("executor", "attempt"),
        "command.completed": ("exit_code", "reason", "duration_ms", "error", "truncated"),
        "command.cancel_requested": (),
    }.get(action, ())
    return {k: data[k] for k in keep if data.get(k) is not None}


def _outcome(action: str, data: Mapping[str, Any]) -> str:
    if action == "command.completed":
        ok = data.get("reason") == "exited" and data.get("exit_code") == 0
        return SUCCESS if ok else FAILURE
    outcome = data.get("outcome")
    return outcome if isinstance(outcome, str) and outcome else SUCCESS


def is_audited(stream_kind: str, action: str) -> bool:
    if action in NOT_AUDITED:
        return False
    if stream_kind == "webhooks":
        return action.endswith(WEBHOOK_STATE)
    return True


def _target(event: Mapping[str, Any], data: Mapping[str, Any]) -> str | None:
    for value in (
        data.get("command_id"),
        event.get("subject"),
        data.get("id"),
        data.get("key_id"),
        data.get("webhook_id"),
    ):
        if isinstance(value, str) and value:
            return value
    return None


def audit_content(
    stream: str,
    stream_kind: str,
    seq: int,
    event: Mapping[str, Any],
    known_actor: str | None = None,
) -> AuditContent | None:
    """The audit row of one CloudEvent, or None when the event is not auditable."""
    action = action_of(str(event.get("type", "")))
    if not is_audited(stream_kind, action):
        return None
    raw = event.get("data")
    data: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    command = action.startswith("command.")
    details = _command_details(action, data) if command else public(data)
    project = event.get("project") or data.get("project")
    if project is None and action.startswith("project."):
        project = _target(event, data)
    return AuditContent(
        stream=stream,
        seq=seq,
        event_id=str(event.get("id", "")),
        time=parse_time(event.get("time")),
        actor=event.get("actor") or data.get("actor") or known_actor,
        client_ip=event.get("clientip") or event.get("client_ip") or data.get("client_ip"),
        project=project,
        action=action,
        target=_target(event, data),
        outcome=_outcome(action, data),
        details=canonical_json(details),
    )


def unreadable_content(
    stream: str, seq: int, subject: str, stored_at: datetime, problem: str
) -> AuditContent:
    """A message that is not a CloudEvent is recorded, never skipped in silence."""
    return AuditContent(
        stream=stream,
        seq=seq,
        event_id="",
        time=stored_at,
        actor=None,
        client_ip=None,
        project=None,
        action="event.unreadable",
        target=subject,
        outcome=FAILURE,
        details=canonical_json({"problem": problem}),
    )
