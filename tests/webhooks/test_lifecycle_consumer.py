"""The lifecycle consumer's batch: acked only after its deliveries are committed."""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any

import pytest
import structlog.testing
from nats.aio.msg import Msg

from rdev_common.events import ApiKeyCreated, CloudEvent, CommandCompleted, Reason
from rdev_webhooks.domain.model import Endpoint, NewDelivery
from rdev_webhooks.domain.schedule import RetrySchedule
from rdev_webhooks.entrypoints.lifecycle import LifecycleIngest


class FakeClient:
    """Records what each message was answered with (`+ACK`, `+TERM`, …)."""

    def __init__(self) -> None:
        self.answers: dict[str, bytes] = {}

    async def publish(self, subject: str, payload: bytes = b"", **_: Any) -> None:
        self.answers[subject] = payload or b"+ACK"


class FakeStore:
    def __init__(self, endpoints: list[Endpoint], fail: bool = False) -> None:
        self.endpoints = endpoints
        self.fail = fail
        self.added: list[NewDelivery] = []
        self.queries = 0

    async def enabled_endpoints(self, projects: Collection[str]) -> list[Endpoint]:
        self.queries += 1
        return [e for e in self.endpoints if e.project in projects]

    async def add_deliveries(self, deliveries: list[NewDelivery]) -> int:
        if self.fail and deliveries:
            raise ConnectionError("database away")
        self.added += deliveries
        return len(deliveries)


def _msg(client: FakeClient, seq: int, project: str, data: bytes | None = None) -> Msg:
    payload = CommandCompleted(
        command_id=f"c{seq}", project=project, exit_code=0, reason=Reason.EXITED, duration_ms=1
    )
    raw = CloudEvent.wrap(payload, source="rdev/test", subject=f"c{seq}", project=project)
    ts = time.time_ns()
    reply = f"$JS.ACK.RDEV_LIFECYCLE.webhooks-runs.1.{seq}.{seq}.{ts}.0"
    return Msg(
        client,  # type: ignore[arg-type]
        subject=f"rdev.runs.{project}.c{seq}.completed",
        reply=reply,
        data=raw.to_bytes() if data is None else data,
    )


def _ingest(store: FakeStore, woken: list[bool]) -> LifecycleIngest:
    return LifecycleIngest(
        store,  # type: ignore[arg-type]
        RetrySchedule(),
        lambda: woken.append(True),
        "webhooks-runs",
    )


HOOK = Endpoint("w1", "web", "http://a/", ["*"], ["s"], True)


async def test_a_batch_is_acked_after_its_deliveries_are_recorded() -> None:
    client, store, woken = FakeClient(), FakeStore([HOOK]), list[bool]()
    msgs = [_msg(client, 1, "web"), _msg(client, 2, "other"), _msg(client, 3, "web", b"{")]
    await _ingest(store, woken).handle(msgs)
    assert store.queries == 1
    assert [d.seq for d in store.added] == [1]
    assert [client.answers[m.reply] for m in msgs] == [b"+ACK", b"+ACK", b"+TERM"]
    assert woken == [True]


async def test_a_batch_matching_nothing_is_acked_without_waking_the_dispatcher() -> None:
    client, store, woken = FakeClient(), FakeStore([HOOK]), list[bool]()
    msgs = [_msg(client, n, "other") for n in range(1, 4)]
    await _ingest(store, woken).handle(msgs)
    assert store.queries == 1 and store.added == []
    assert all(client.answers[m.reply] == b"+ACK" for m in msgs)
    assert woken == []


@pytest.mark.parametrize("endpoints", [[HOOK], []], ids=["insert-fails", "query-fails"])
async def test_a_failed_batch_is_left_unacked_for_redelivery(endpoints: list[Endpoint]) -> None:
    client, woken = FakeClient(), list[bool]()
    store = FakeStore(endpoints, fail=True)
    if not endpoints:

        async def away(projects: Collection[str]) -> list[Endpoint]:
            raise ConnectionError("database away")

        store.enabled_endpoints = away  # type: ignore[method-assign]
    msgs = [_msg(client, 1, "web"), _msg(client, 2, "other")]
    await _ingest(store, woken).handle(msgs)
    assert client.answers == {} and woken == []


async def test_an_admin_event_without_a_project_is_acked_quietly() -> None:
    """`api_key.created` belongs to no project, so no registration can match it: it is
    read and acked like any event that matches nothing, and logs no error."""
    client, store, woken = FakeClient(), FakeStore([HOOK]), list[bool]()
    payload = ApiKeyCreated(key_id="k1", name="ci", prefix="rdev_abc", scopes=["admin"])
    raw = CloudEvent.wrap(payload, source="rdev/api", subject="k1").to_bytes()
    ts = time.time_ns()
    msg = Msg(
        client,  # type: ignore[arg-type]
        subject="rdev.admin.api_key.created",
        reply=f"$JS.ACK.RDEV_ADMIN.webhooks-admin.1.7.7.{ts}.0",
        data=raw,
    )
    with structlog.testing.capture_logs() as logs:
        await _ingest(store, woken).handle([msg])
    assert client.answers[msg.reply] == b"+ACK"
    assert store.added == [] and woken == []
    assert [e for e in logs if e["log_level"] in ("error", "critical")] == []
