"""Ingest: one delivery per matching, enabled registration, keyed so a redelivery adds none."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rdev_common.events import CloudEvent, CommandCompleted, Reason
from rdev_webhooks.domain.model import Endpoint, NewDelivery
from rdev_webhooks.domain.schedule import RetrySchedule
from rdev_webhooks.service_layer.ingest import ingest

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class FakeStore:
    def __init__(self, endpoints: list[Endpoint]) -> None:
        self.endpoints = endpoints
        self.deliveries: dict[str, NewDelivery] = {}

    async def endpoints_of(self, project: str) -> list[Endpoint]:
        return [e for e in self.endpoints if e.project == project and e.enabled]

    async def add_deliveries(self, deliveries: list[NewDelivery]) -> int:
        fresh = [d for d in deliveries if d.dedup_key not in self.deliveries]
        self.deliveries.update((d.dedup_key, d) for d in fresh)
        return len(fresh)


def _completed(project: str | None) -> bytes:
    payload = CommandCompleted(
        command_id="c1", project="web", exit_code=0, reason=Reason.EXITED, duration_ms=5
    )
    return CloudEvent.wrap(payload, source="rdev/test", subject="c1", project=project).to_bytes()


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
    args = {"stream": "RDEV_LIFECYCLE", "seq": 42, "now": NOW, "schedule": schedule}
    assert await ingest(store, raw, **args) == 1  # type: ignore[arg-type]
    assert await ingest(store, raw, **args) == 0  # type: ignore[arg-type]
    (delivery,) = store.deliveries.values()
    event = CloudEvent.from_bytes(raw)
    assert delivery.webhook_id == "w1" and delivery.dedup_key == f"w1:{event.id}"
    assert delivery.payload == raw.decode() and delivery.seq == 42
    assert delivery.id.startswith("msg_")
    assert delivery.next_attempt_at == NOW + timedelta(seconds=2)


async def test_project_falls_back_to_the_subject() -> None:
    store = FakeStore([Endpoint("w1", "web", "http://a/", ["*"], ["s"], True)])
    added = await ingest(
        store,  # type: ignore[arg-type]
        _completed(None),
        stream="RDEV_LIFECYCLE",
        seq=1,
        now=NOW,
        schedule=RetrySchedule(),
        subject="rdev.runs.web.c1.completed",
    )
    assert added == 1
