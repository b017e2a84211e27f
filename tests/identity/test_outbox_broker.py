"""The outbox relay against a real JetStream: nothing lost, nothing published twice."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rdev_common.broker import EmbeddedNats, connect
from rdev_common.outbox import OutboxRelay, nats_publisher
from rdev_common.settings import CommonSettings
from rdev_common.streams import ADMIN, ensure_streams
from tests.identity.test_repositories import write_events


async def admin_event_ids(js: Any) -> list[str]:
    """Every Nats-Msg-Id in RDEV_ADMIN, in stream order."""
    info = await js.stream_info(ADMIN)
    ids = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        message = await js.get_msg(ADMIN, seq)
        ids.append(message.headers["Nats-Msg-Id"])
    return ids


async def test_a_relay_dying_after_publish_causes_no_duplicate(
    sessions: Any, nats_server: EmbeddedNats
) -> None:
    nc = await connect(nats_server.url, "test")
    js = nc.jetstream()
    await ensure_streams(js, CommonSettings())
    ids = await write_events(sessions, 3)
    real = nats_publisher(js, ADMIN)

    async def publish_then_die(subject: str, payload: bytes, event_id: str) -> None:
        await real(subject, payload, event_id)
        if event_id == ids[-1]:
            raise SystemExit("killed after publishing, before marking sent")

    with pytest.raises(SystemExit):
        await OutboxRelay(sessions, publish_then_die).relay_once()
    assert await admin_event_ids(js) == ids
    assert await OutboxRelay(sessions, real).relay_once() == 3, "nothing was marked sent"
    assert await OutboxRelay(sessions, real).relay_once() == 0
    assert await admin_event_ids(js) == ids, "JetStream dropped the republished duplicates"
    await nc.close()


async def test_relays_of_several_replicas_publish_each_event_once(
    sessions: Any, nats_server: EmbeddedNats
) -> None:
    nc = await connect(nats_server.url, "test")
    js = nc.jetstream()
    await ensure_streams(js, CommonSettings())
    ids = await write_events(sessions, 40)
    published: list[str] = []
    real = nats_publisher(js, ADMIN)

    async def counting(subject: str, payload: bytes, event_id: str) -> None:
        published.append(event_id)
        await real(subject, payload, event_id)

    relays = [OutboxRelay(sessions, counting, batch=5) for _ in range(3)]

    async def drain(relay: OutboxRelay) -> None:
        while await relay.relay_once():
            pass

    await asyncio.gather(*(drain(r) for r in relays))
    assert sorted(await admin_event_ids(js)) == sorted(ids)
    # Claimed rows are locked (PostgreSQL) or serialised (SQLite): no row went out twice.
    assert sorted(published) == sorted(ids)
    await nc.close()
