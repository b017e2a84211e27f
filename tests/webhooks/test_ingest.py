"""Ingest: one delivery per matching, enabled registration, keyed so a redelivery adds none;
a batch of events costs one endpoints query."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any

from rdev_common.events import CloudEvent, CommandCompleted, CommandStarted, Reason
from rdev_webhooks.domain.model import Endpoint, NewDelivery
from rdev_webhooks.domain.schedule import RetrySchedule
from rdev_webhooks.service_layer.ingest import Incoming, plan

NOW = datetime(2026, 1, 1, tzinfo=UTC)
STREAM = "RDEV_LIFECYCLE"


class FakeStore:
    def __init__(self, endpoints: list[Endpoint]) -> None:
        self.endpoints = endpoints
        self.deliveries: dict[str, NewDelivery] = {}
        self.queries: list[set[str]] = []

    async def enabled_endpoints(self, projects: Collection[str]) -> list[Endpoint]:
        self.queries.append(set(projects))
        return [e for e in self.endpoints if e.project in projects and e.enabled]

    async def add_deliveries(self, deliveries: list[NewDelivery]) -> int:
        fresh = [d for d in deliveries if d.dedup_key not in self.deliveries]
        self.deliveries.update((d.dedup_key, d) for d in fresh)
        return len(fresh)


def _completed(project: str | None, command_id: str = "c1") -> bytes:
    payload = CommandCompleted(
        command_id=command_id, project="web", exit_code=0, reason=Reason.EXITED, duration_ms=5
    )
    return CloudEvent.wrap(
        payload, source="rdev/test", subject=command_id, project=project
    ).to_bytes()


def _started(project: str) -> bytes:
    payload = CommandStarted(command_id="c1", project=project, executor="x")
    return CloudEvent.wrap(payload, source="rdev/test", subject="c1", project=project).to_bytes()


async def _record(store: FakeStore, events: list[Incoming], **when: Any) -> int:
    """What the lifecycle consumer does with a batch: plan it, record its deliveries."""
    batch = await plan(store, events, **when)
    return await store.add_deliveries(batch.deliveries)


async def test_matching_enabled_endpoints_get_one_delivery_each_once() -> None:
    store = FakeStore(
        [
            Endpoint("w1", "web", "http://a/", ["command.*"], ["s"], True),
            Endpoint("w2", "web", "http://b/", ["command.started"], ["s"], True),
            Endpoint("w3", "web", "http://c/", ["*"], ["s"], False),
            Endpoint("w4", "api", "http://d/", ["*"], ["s"], True),
        ]
    )
    raw = _completed("web")
    schedule = RetrySchedule((2.0, 5.0))
    events = [Incoming(raw, STREAM, 42)]
    assert await _record(store, events, now=NOW, schedule=schedule) == 1
    assert await _record(store, events, now=NOW, schedule=schedule) == 0
    (delivery,) = store.deliveries.values()
    event = CloudEvent.from_bytes(raw)
    assert delivery.webhook_id == "w1" and delivery.dedup_key == f"w1:{event.id}"
    assert delivery.payload == raw.decode() and delivery.seq == 42
    assert delivery.stream == STREAM and delivery.project == "web"
    assert delivery.id.startswith("msg_")
    assert delivery.next_attempt_at == NOW + timedelta(seconds=2)


async def test_project_falls_back_to_the_subject() -> None:
    store = FakeStore([Endpoint("w1", "web", "http://a/", ["*"], ["s"], True)])
    events = [Incoming(_completed(None), STREAM, 1, "rdev.runs.web.c1.completed")]
    added = await _record(store, events, now=NOW, schedule=RetrySchedule())
    assert added == 1


async def test_a_batch_reads_the_endpoints_of_all_its_projects_in_one_query() -> None:
    store = FakeStore(
        [
            Endpoint("w1", "web", "http://a/", ["command.completed"], ["s"], True),
            Endpoint("w2", "api", "http://b/", ["*"], ["s"], True),
        ]
    )
    started, completed = _started("web"), _completed("web")
    events = [
        Incoming(started, STREAM, 1),  # web, but w1 wants completed only
        Incoming(b"not json", STREAM, 2),
        Incoming(completed, STREAM, 3),
        Incoming(_completed("none"), STREAM, 4),  # a project without endpoints
        Incoming(_started("api"), STREAM, 5),
        Incoming(completed, STREAM, 3),  # the same message twice in one batch
        Incoming(_completed(None), STREAM, 6),  # no project, no subject: matches nothing
    ]
    batch = await plan(store, events, now=NOW, schedule=RetrySchedule())
    assert store.queries == [{"web", "none", "api"}]
    assert batch.unreadable == [1]
    assert batch.matched == [2, 4, 5]
    assert sorted((d.webhook_id, d.seq) for d in batch.deliveries) == [("w1", 3), ("w2", 5)]


async def test_a_batch_that_names_no_project_reads_no_endpoint() -> None:
    store = FakeStore([])
    events = [Incoming(b"{", STREAM, 1), Incoming(_completed(None), STREAM, 2)]
    batch = await plan(store, events, now=NOW, schedule=RetrySchedule())
    assert store.queries == [] and batch.deliveries == [] and batch.unreadable == [0]
