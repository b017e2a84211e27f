"""Contract tests of the repositories: the same cases against the in-memory fake, SQLite
and PostgreSQL; the outbox relay against both databases."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from rdev_api.adapters.sqlalchemy_repositories import SqlAlchemyUnitOfWork
from rdev_api.domain.model import ApiKey, Project, Scope
from rdev_api.domain.ratelimit import RateLimitPolicy
from rdev_common.db.engine import create_engine, session_factory
from rdev_common.db.tables import OutboxRow
from rdev_common.events import ApiKeyRevoked, CloudEvent
from rdev_common.outbox import OutboxRelay
from tests.identity.conftest import fresh_database
from tests.identity.fakes import FakeUnitOfWork, Store

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)


@pytest.fixture(params=["fake", "sqlite", "postgresql"])
async def new_uow(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """A factory of units of work over one empty store of the given kind."""
    if request.param == "fake":
        store = Store()
        yield lambda: FakeUnitOfWork(store)
        return
    databases = fresh_database(request.param, tmp_path)
    url = next(databases)
    engine = create_engine(url)
    sessions = session_factory(engine)
    yield lambda: SqlAlchemyUnitOfWork(sessions)
    await engine.dispose()
    next(databases, None)


def a_key(key_id: str = "k1", **fields: Any) -> ApiKey:
    return ApiKey(
        id=key_id,
        name="ci",
        secret_hash=f"hash-{key_id}",
        prefix="rdev_abc",
        scopes=frozenset({Scope.COMMANDS_READ, Scope.COMMANDS_EXECUTE}),
        created_at=NOW,
        **fields,
    )


async def test_keys_round_trip_with_policies_and_rotation(new_uow: Any) -> None:
    key = a_key(
        projects=frozenset({"alpha"}),
        allowed_ips=("10.0.0.0/8",),
        expires_at=NOW + timedelta(days=1),
        rate_limits={"submit": RateLimitPolicy("submit", 5, 60)},
    )
    async with new_uow() as uow:
        await uow.api_keys.add(key)
        await uow.commit()
    async with new_uow() as uow:
        assert await uow.api_keys.get("k1") == key
        assert await uow.api_keys.fresh("k1") == key
        assert await uow.api_keys.get_by_hash("hash-k1") == key
        assert await uow.api_keys.count() == 1
        rotated = replace(
            key,
            secret_hash="hash-new",
            previous_secret_hash="hash-k1",
            previous_expires_at=NOW + timedelta(hours=1),
            rate_limits={"requests": RateLimitPolicy("requests", 100, 60)},
        )
        found = await uow.api_keys.get_for_update("k1")
        assert found is not None
        await uow.api_keys.update(rotated)
        await uow.commit()
    async with new_uow() as uow:
        assert await uow.api_keys.get_by_hash("hash-new") == rotated
        assert await uow.api_keys.get_by_hash("hash-k1") == rotated  # the previous secret
        assert await uow.api_keys.get_by_hash("hash-unknown") is None
        assert await uow.api_keys.list() == [rotated]


async def test_last_used_only_moves_forward(new_uow: Any) -> None:
    async with new_uow() as uow:
        await uow.api_keys.add(a_key("k1"))
        await uow.api_keys.add(a_key("k2"))
        await uow.commit()
    async with new_uow() as uow:
        await uow.api_keys.touch({"k1": NOW, "k2": NOW + timedelta(seconds=5)})
        await uow.commit()
    async with new_uow() as uow:
        await uow.api_keys.touch({"k1": NOW - timedelta(hours=1)})
        await uow.commit()
    async with new_uow() as uow:
        k1, k2 = await uow.api_keys.get("k1"), await uow.api_keys.get("k2")
    assert k1 is not None and k1.last_used_at == NOW
    assert k2 is not None and k2.last_used_at == NOW + timedelta(seconds=5)


async def test_projects_round_trip_update_and_remove(new_uow: Any) -> None:
    project = Project(
        id="alpha",
        workdir="/srv/alpha",
        created_at=NOW,
        updated_at=NOW,
        env={"A": "1"},
        secrets={"TOKEN": "s"},
        max_concurrency=2,
        default_timeout_s=30.0,
        command_policy={"allow": ["npm *"], "deny": []},
    )
    async with new_uow() as uow:
        await uow.projects.add(project)
        await uow.commit()
    changed = replace(project, env={}, secrets={"TOKEN": "t"}, updated_at=NOW + timedelta(1))
    async with new_uow() as uow:
        assert await uow.projects.get_for_update("alpha") == project
        await uow.projects.update(changed)
        await uow.commit()
    async with new_uow() as uow:
        assert await uow.projects.get("alpha") == changed
        assert await uow.projects.list() == [changed]
        await uow.projects.remove("alpha")
        await uow.commit()
    async with new_uow() as uow:
        assert await uow.projects.get("alpha") is None


async def test_an_uncommitted_unit_of_work_leaves_nothing(sessions: Any) -> None:
    async with SqlAlchemyUnitOfWork(sessions) as uow:
        await uow.api_keys.add(a_key())
        await uow.outbox.add(
            CloudEvent.wrap(ApiKeyRevoked(key_id="k1"), source="t", subject="k1"), "s"
        )
    async with SqlAlchemyUnitOfWork(sessions) as uow:
        assert await uow.api_keys.count() == 0
    async with sessions() as session:
        assert list(await session.scalars(select(OutboxRow))) == []


async def write_events(sessions: Any, n: int) -> list[str]:
    ids = []
    woken: list[bool] = []
    async with SqlAlchemyUnitOfWork(sessions, lambda: woken.append(True)) as uow:
        for i in range(n):
            event = CloudEvent.wrap(ApiKeyRevoked(key_id=f"k{i}"), source="t", subject=f"k{i}")
            await uow.outbox.add(event, "rdev.admin.api_key.revoked")
            ids.append(event.id)
        await uow.commit()
    assert woken == [True], "a commit with outbox rows wakes the relay"
    return ids


async def test_the_relay_publishes_in_order_and_marks_sent(sessions: Any) -> None:
    ids = await write_events(sessions, 5)
    published: list[str] = []

    async def publish(subject: str, payload: bytes, event_id: str) -> None:
        assert CloudEvent.from_bytes(payload).id == event_id
        published.append(event_id)

    relay = OutboxRelay(sessions, publish, batch=3)
    assert await relay.relay_once() == 3
    assert await relay.relay_once() == 2
    assert await relay.relay_once() == 0
    assert published == ids


async def test_a_publish_failure_keeps_the_rows_for_the_next_attempt(sessions: Any) -> None:
    ids = await write_events(sessions, 2)
    published: list[str] = []

    async def flaky(subject: str, payload: bytes, event_id: str) -> None:
        published.append(event_id)
        if len(published) == 2:
            raise TimeoutError("broker away")

    with pytest.raises(TimeoutError):
        await OutboxRelay(sessions, flaky).relay_once()
    # Both rows are still unsent: the first is published again, with the same id.
    assert await OutboxRelay(sessions, flaky).relay_once() == 2
    assert published == [ids[0], ids[1], ids[0], ids[1]]


async def test_sent_rows_are_pruned_after_the_keep_time_unsent_ones_never(sessions: Any) -> None:
    ids = await write_events(sessions, 3)

    async def publish(subject: str, payload: bytes, event_id: str) -> None:
        pass

    relay = OutboxRelay(sessions, publish, batch=2, keep_s=3600)
    assert await relay.relay_once() == 2  # the third stays unsent
    assert await relay.prune() == 0, "sent just now: kept"
    later = datetime.now(UTC) + timedelta(hours=2)
    assert await relay.prune(later) == 2
    async with sessions() as session:
        left = list(await session.scalars(select(OutboxRow)))
    assert [(r.id, r.sent_at) for r in left] == [(ids[2], None)]


async def test_a_pass_claims_only_its_batch_not_the_backlog(sessions: Any) -> None:
    ids = await write_events(sessions, 7)

    async def publish(subject: str, payload: bytes, event_id: str) -> None:
        pass

    assert await OutboxRelay(sessions, publish, batch=3).relay_once() == 3
    async with sessions() as session:
        rows = {r.id: r for r in await session.scalars(select(OutboxRow))}
    assert [rows[i].sent_at is not None for i in ids] == [True] * 3 + [False] * 4
    # The four left behind were not touched: a backlog does not make each pass cost more.
    assert [rows[i].attempts for i in ids[3:]] == [0] * 4


async def test_a_failing_relay_backs_off_deaf_to_wake_ups_then_catches_up(sessions: Any) -> None:
    ids = await write_events(sessions, 2)
    tries: list[str] = []
    broker_back = False
    published: list[str] = []

    async def publish(subject: str, payload: bytes, event_id: str) -> None:
        tries.append(event_id)
        if not broker_back:
            raise TimeoutError("broker away")
        published.append(event_id)

    relay = OutboxRelay(sessions, publish, poll_s=0.05)
    task = asyncio.create_task(relay.run())
    try:
        # A commit every 10 ms wakes the relay; while publishing fails it must not retry
        # at that pace (each failing pass waits out its publish timeout): 0.1, 0.2,
        # 0.4, 0.8 s apart at most four or five passes fit in 1.5 s, not 150.
        for _ in range(150):
            relay.wake()
            await asyncio.sleep(0.01)
        assert 1 <= len(tries) <= 6, f"{len(tries)} passes in 1.5 s"
        broker_back = True
        for _ in range(600):  # the next pass, within the longest back-off
            if published == ids:
                break
            relay.wake()
            await asyncio.sleep(0.02)
        assert published == ids
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_writers_go_on_while_the_relay_waits_for_the_broker(sessions: Any) -> None:
    """A publish that hangs (the broker slow or away) holds no lock a writer needs."""
    ids = await write_events(sessions, 2)
    entered, release = asyncio.Event(), asyncio.Event()

    async def stalled(subject: str, payload: bytes, event_id: str) -> None:
        entered.set()
        await release.wait()

    relay = asyncio.create_task(OutboxRelay(sessions, stalled).relay_once())
    await asyncio.wait_for(entered.wait(), 10)
    later = await asyncio.wait_for(write_events(sessions, 1), 5)  # commits meanwhile
    release.set()
    assert await relay == 2
    async with sessions() as session:
        rows = {r.id: r for r in await session.scalars(select(OutboxRow))}
    assert [rows[i].sent_at is not None for i in [*ids, *later]] == [True, True, False]


async def test_a_failed_pass_counts_an_attempt_and_leaves_the_rows_unsent(sessions: Any) -> None:
    ids = await write_events(sessions, 2)

    async def away(subject: str, payload: bytes, event_id: str) -> None:
        raise TimeoutError("broker away")

    for _ in range(2):
        with pytest.raises(TimeoutError):
            await OutboxRelay(sessions, away).relay_once()
    async with sessions() as session:
        rows = {r.id: r for r in await session.scalars(select(OutboxRow))}
    assert [(rows[i].attempts, rows[i].sent_at) for i in ids] == [(2, None), (2, None)]
