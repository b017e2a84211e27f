"""Turn lifecycle events into one delivery per matching, enabled registration.

Events come in batches: one query reads the enabled endpoints of every project in
the batch, and one transaction records all its deliveries. Most events match no
endpoint, so a batch usually costs that one query and nothing else.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import uuid6
from pydantic import ValidationError

from rdev_common import subjects
from rdev_common.events import CloudEvent
from rdev_common.webhook_rules import matches
from rdev_webhooks.domain.model import Endpoint, NewDelivery
from rdev_webhooks.domain.schedule import RetrySchedule
from rdev_webhooks.service_layer.ports import DeliveryStore


def delivery_id() -> str:
    """`msg_<uuid7 hex>`: the `webhook-id` header, time-ordered for cursor pages."""
    return "msg_" + uuid6.uuid7().hex


@dataclass(frozen=True)
class Incoming:
    """A lifecycle event as it came off its stream."""

    raw: bytes
    stream: str
    seq: int
    subject: str | None = None


@dataclass
class Plan:
    """What a batch comes to; positions index the batch."""

    deliveries: list[NewDelivery] = field(default_factory=list)
    matched: list[int] = field(default_factory=list)  # events with at least one delivery
    unreadable: list[int] = field(default_factory=list)  # events that can never be read


@dataclass(frozen=True)
class _Readable:
    position: int
    event: CloudEvent
    project: str
    payload: str


async def plan(
    store: DeliveryStore, events: Sequence[Incoming], *, now: datetime, schedule: RetrySchedule
) -> Plan:
    """The deliveries a batch asks for, from the endpoints committed now; writes nothing."""
    result = Plan()
    readable = _read(events, result.unreadable)
    if not readable:
        return result
    endpoints: dict[str, list[Endpoint]] = defaultdict(list)
    for endpoint in await store.enabled_endpoints({r.project for r in readable}):
        endpoints[endpoint.project].append(endpoint)
    due = now + timedelta(seconds=schedule.first_delay())
    keys: set[str] = set()  # a message fetched twice in one batch is recorded once
    for r in readable:
        found = [
            _delivery(endpoint, r, events[r.position], due)
            for endpoint in endpoints.get(r.project, ())
            if endpoint.enabled and matches(endpoint.events, r.event.type)
        ]
        fresh = [d for d in found if d.dedup_key not in keys]
        keys.update(d.dedup_key for d in fresh)
        result.deliveries += fresh
        if found:
            result.matched.append(r.position)
    return result


def _read(events: Sequence[Incoming], unreadable: list[int]) -> list[_Readable]:
    """The batch's events that name a project; the positions of unreadable ones go to
    `unreadable`. An event of no project (an admin event such as `api_key.created`)
    is read, and matches no registration: registrations belong to a project."""
    readable = []
    for position, incoming in enumerate(events):
        try:
            payload = incoming.raw.decode()
            event = CloudEvent.from_bytes(incoming.raw)
            project = event.project or _run_project(incoming.subject)
        except (ValidationError, ValueError, UnicodeDecodeError):
            unreadable.append(position)
            continue
        if project:
            readable.append(_Readable(position, event, project, payload))
    return readable


def _run_project(subject: str | None) -> str | None:
    """The project named by a run subject; None for any other subject."""
    if subject is None or not subject.startswith(f"{subjects.RUNS_PREFIX}."):
        return None
    return subjects.parse_run_subject(subject)[0]


def _delivery(endpoint: Endpoint, r: _Readable, incoming: Incoming, due: datetime) -> NewDelivery:
    return NewDelivery(
        id=delivery_id(),
        webhook_id=endpoint.id,
        project=r.project,
        event_id=r.event.id,
        event_type=r.event.type,
        stream=incoming.stream,
        seq=incoming.seq,
        dedup_key=f"{endpoint.id}:{r.event.id}",
        payload=r.payload,
        next_attempt_at=due,
    )
