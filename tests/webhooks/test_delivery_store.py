"""The delivery store on SQLite and PostgreSQL: one owner per attempt, crashes close attempts."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, select, text

from rdev_common.db.engine import create_engine, session_factory
from rdev_common.db.migrate import upgrade
from rdev_common.db.tables import (
    WebhookAttemptRow,
    WebhookDeliveryRow,
    WebhookOutboxRow,
    WebhookRow,
)
from rdev_common.events import CloudEvent
from rdev_common.webhook_events import DeliveryAttempted
from rdev_webhooks.adapters.sqlalchemy_attempts import attempt_event_id
from rdev_webhooks.adapters.sqlalchemy_store import SqlAlchemyDeliveryStore
from rdev_webhooks.adapters.sqlite_threads import SqliteThreads
from rdev_webhooks.domain.model import AttemptResult, Delivery, NewDelivery
from rdev_webhooks.service_layer.ports import Recorded

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "sqlite-threads", "postgres"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[SqlAlchemyDeliveryStore]:
    sqlite = request.param.startswith("sqlite")
    if sqlite:
        url = f"sqlite+aiosqlite:///{tmp_path / 'rdev.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    async with sessions() as s:
        for table in (WebhookAttemptRow, WebhookDeliveryRow, WebhookRow, WebhookOutboxRow):
            await s.execute(delete(table))
        s.add(
            WebhookRow(
                id="w1",
                project="p",
                url="http://example.com/",
                events=["command.*"],
                enabled=True,
                secret="whsec_AAAA",
                created_at=T0,
                updated_at=T0,
            )
        )
        await s.commit()
    sqlite_threads = (
        SqliteThreads(str(tmp_path / "rdev.db")) if request.param.endswith("threads") else None
    )
    yield SqlAlchemyDeliveryStore(sessions, sqlite, sqlite_threads)
    if sqlite_threads is not None:
        await sqlite_threads.aclose()
    await engine.dispose()


def _event(delivery: Delivery, n: int, result: AttemptResult) -> DeliveryAttempted:
    outcome = "succeeded" if result.succeeded else "failed"
    return DeliveryAttempted(
        webhook_id=delivery.webhook_id,
        delivery_id=delivery.id,
        event_id=delivery.event_id,
        event_kind=delivery.event_type,
        attempt=n,
        outcome=outcome,
        status_code=result.status_code,
        duration_ms=result.duration_ms,
        error=result.error,
    )


async def _record(
    store: SqlAlchemyDeliveryStore,
    delivery: Delivery,
    n: int,
    result: AttemptResult,
    next_attempt_at: datetime | None,
    now: datetime,
    disable_after_s: float,
) -> Recorded:
    """Record attempt `n` with the event the dispatcher would write with it."""
    event = _event(delivery, n, result)
    return await store.record(delivery, n, result, next_attempt_at, now, disable_after_s, event)


def _delivery(n: int = 1) -> NewDelivery:
    return NewDelivery(
        id=f"msg_{n}",
        webhook_id="w1",
        project="p",
        event_id=f"e{n}",
        event_type="dev.rdev.command.completed.v1",
        stream="RDEV_LIFECYCLE",
        seq=n,
        dedup_key=f"w1:e{n}",
        payload="{}",
        next_attempt_at=T0,
    )


async def test_a_redelivered_event_adds_no_second_delivery(store: SqlAlchemyDeliveryStore) -> None:
    assert await store.add_deliveries([_delivery()]) == 1
    assert await store.add_deliveries([_delivery()]) == 0
    assert await store.due_endpoints(T0) == ["w1"]


async def test_a_batch_records_its_new_deliveries_and_skips_known_ones(
    store: SqlAlchemyDeliveryStore,
) -> None:
    """One INSERT for a batch: a key recorded before is skipped, the rest still go in."""
    assert await store.add_deliveries([_delivery(2)]) == 1
    assert await store.add_deliveries([_delivery(1), _delivery(2), _delivery(3)]) == 2
    assert await store.add_deliveries([]) == 0
    assert sorted(await store.due_deliveries("w1", T0, set(), 10)) == ["msg_1", "msg_2", "msg_3"]


async def test_enabled_endpoints_of_several_projects(store: SqlAlchemyDeliveryStore) -> None:
    (endpoint,) = await store.enabled_endpoints(["p", "elsewhere"])
    assert (endpoint.id, endpoint.project, endpoint.url) == ("w1", "p", "http://example.com/")
    assert endpoint.events == ["command.*"] and endpoint.secrets == ["whsec_AAAA"]
    assert endpoint.enabled
    assert await store.enabled_endpoints(["elsewhere"]) == []
    assert await store.enabled_endpoints([]) == []


async def test_each_attempt_has_one_owner_and_a_crash_closes_it(
    store: SqlAlchemyDeliveryStore,
) -> None:
    await store.add_deliveries([_delivery()])
    lease = T0 + timedelta(seconds=20)
    claims = await asyncio.gather(*(store.claim("msg_1", T0, lease, 3) for _ in range(3)))
    owned = [c for c in claims if c is not None]
    assert len(owned) == 1 and owned[0].attempt == 1
    assert await store.due_deliveries("w1", T0 + timedelta(seconds=5), set(), 10) == []
    # The owner "crashed" without recording: after the lease, attempt 2 follows attempt 1.
    later = lease + timedelta(seconds=1)
    assert await store.due_deliveries("w1", later, set(), 10) == ["msg_1"]
    claim = await store.claim("msg_1", later, later + timedelta(seconds=20), 3)
    assert claim is not None and claim.attempt == 2 and claim.interrupted == [1]
    result = AttemptResult(status_code=200, duration_ms=3)
    recorded = await _record(store, claim.delivery, 2, result, None, later, 3600)
    assert recorded.disabled_reason is None
    assert await store.claim("msg_1", later + timedelta(hours=1), later, 3) is None


async def test_the_last_attempt_interrupted_fails_the_delivery(
    store: SqlAlchemyDeliveryStore,
) -> None:
    await store.add_deliveries([_delivery()])
    claim = await store.claim("msg_1", T0, T0 + timedelta(seconds=1), 1)
    assert claim is not None
    after = T0 + timedelta(seconds=2)
    final = await store.claim("msg_1", after, after, 1)
    assert final is not None and final.attempt == 0 and final.interrupted == [1]
    assert await store.due_endpoints(after + timedelta(days=1)) == []


async def test_410_disables_at_once_and_a_long_failure_streak_disables(
    store: SqlAlchemyDeliveryStore,
) -> None:
    await store.add_deliveries([_delivery(1), _delivery(2)])
    failed = AttemptResult(status_code=500, duration_ms=1, error="HTTP 500")
    c1 = await store.claim("msg_1", T0, T0, 5)
    assert c1 is not None
    first = await _record(store, c1.delivery, 1, failed, T0, T0, 60)
    assert first.disabled_reason is None
    late = T0 + timedelta(seconds=61)
    c1 = await store.claim("msg_1", late, late, 5)
    assert c1 is not None
    second = await _record(store, c1.delivery, 2, failed, late, late, 60)
    assert second.disabled_reason is not None and "failing continuously" in second.disabled_reason
    # Disabled: the next claim finishes the delivery instead of sending.
    assert await store.claim("msg_2", late, late, 5) is None
    assert await store.enabled_endpoints(["p"]) == []


async def test_gone_disables(store: SqlAlchemyDeliveryStore) -> None:
    await store.add_deliveries([_delivery()])
    claim = await store.claim("msg_1", T0, T0, 5)
    assert claim is not None
    gone = AttemptResult(status_code=410, duration_ms=1, error="HTTP 410")
    recorded = await _record(store, claim.delivery, 1, gone, None, T0, 1e9)
    assert recorded.disabled_reason == "the endpoint answered 410 Gone"


async def test_disabling_writes_its_event_to_the_outbox_in_the_same_transaction(
    store: SqlAlchemyDeliveryStore,
) -> None:
    await store.add_deliveries([_delivery(1), _delivery(2)])
    failed = AttemptResult(status_code=500, duration_ms=1, error="HTTP 500")
    claim = await store.claim("msg_1", T0, T0, 5)
    assert claim is not None
    await _record(store, claim.delivery, 1, failed, T0, T0, 60)
    assert await _outbox(store, "disabled") == [], "a failure that does not disable it"
    gone = AttemptResult(status_code=410, duration_ms=1, error="HTTP 410")
    claim = await store.claim("msg_2", T0, T0, 5)
    assert claim is not None
    await _record(store, claim.delivery, 1, gone, None, T0, 60)
    [row] = await _outbox(store, "disabled")
    assert row.subject == "rdev.webhooks.w1.disabled" and row.sent_at is None
    event = CloudEvent.from_bytes(row.payload.encode())
    assert (event.id, event.type, event.subject, event.project) == (
        row.id,
        "dev.rdev.webhook.disabled.v1",
        "w1",
        "p",
    )
    assert event.data == {
        "webhook_id": "w1",
        "project": "p",
        "reason": "the endpoint answered 410 Gone",
    }


async def _outbox(store: SqlAlchemyDeliveryStore, kind: str) -> list[WebhookOutboxRow]:
    """The outbox rows of one kind of event, oldest first."""
    query = select(WebhookOutboxRow).where(WebhookOutboxRow.subject.endswith(f".{kind}"))
    async with store.sessions() as s:
        return list(
            await s.scalars(query.order_by(WebhookOutboxRow.created_at, WebhookOutboxRow.id))
        )


async def test_every_attempt_writes_its_event_with_its_record(
    store: SqlAlchemyDeliveryStore,
) -> None:
    """The result and its event in one transaction, the interrupted attempt's event with
    the claim that closes it: the stream of attempt events says what the table says."""
    await store.add_deliveries([_delivery()])
    first = await store.claim("msg_1", T0, T0 + timedelta(seconds=1), 3)
    assert first is not None
    assert await _outbox(store, "attempt") == [], "nothing is said of an attempt on the wire"
    # Its result never recorded (a crash, a database away): the next claim closes it.
    later = T0 + timedelta(seconds=2)
    second = await store.claim("msg_1", later, later + timedelta(seconds=20), 3)
    assert second is not None and second.interrupted == [1]
    ok = AttemptResult(status_code=200, duration_ms=3)
    await _record(store, second.delivery, 2, ok, None, later, 3600)
    events = [CloudEvent.from_bytes(r.payload.encode()) for r in await _outbox(store, "attempt")]
    said = [(e.data["attempt"], e.data["outcome"]) for e in events]
    assert said == [(1, "interrupted"), (2, "succeeded")]
    assert {e.subject for e in events} == {"w1"}
    assert events[0].data["delivery_id"] == "msg_1" and events[0].data["event_id"] == "e1"
    async with store.sessions() as s:
        attempts = await s.scalars(
            select(WebhookAttemptRow).where(WebhookAttemptRow.delivery_id == "msg_1")
        )
        table = sorted((a.n, a.outcome) for a in attempts)
    assert table == said


async def test_a_result_after_its_lease_ran_out_changes_nothing(
    store: SqlAlchemyDeliveryStore,
) -> None:
    """Attempt 1 was closed as interrupted and attempt 2 taken when 1's answer came in:
    the table keeps what it says, and no second event of attempt 1 is written."""
    await store.add_deliveries([_delivery()])
    first = await store.claim("msg_1", T0, T0 + timedelta(seconds=1), 3)
    assert first is not None
    later = T0 + timedelta(seconds=2)
    second = await store.claim("msg_1", later, later + timedelta(seconds=20), 3)
    assert second is not None and second.interrupted == [1]
    ok = AttemptResult(status_code=200, duration_ms=3)
    recorded = await _record(store, first.delivery, 1, ok, None, later, 3600)
    assert recorded.late and recorded.disabled_reason is None
    async with store.sessions() as s:
        attempts = await s.scalars(
            select(WebhookAttemptRow).where(WebhookAttemptRow.delivery_id == "msg_1")
        )
        table = sorted((a.n, a.outcome) for a in attempts)
        delivery = await s.get(WebhookDeliveryRow, "msg_1")
    assert table == [(1, "interrupted"), (2, "sending")]
    assert delivery is not None and delivery.status == "pending"
    said = [CloudEvent.from_bytes(r.payload.encode()).data for r in await _outbox(store, "attempt")]
    assert [(e["attempt"], e["outcome"]) for e in said] == [(1, "interrupted")]


async def test_two_replicas_closing_one_interrupted_attempt_write_one_event(
    store: SqlAlchemyDeliveryStore,
) -> None:
    """Its last attempt cut short, the delivery is finished by whichever replica claims
    it first; the other finds the attempt closed and writes nothing."""
    await store.add_deliveries([_delivery()])
    assert await store.claim("msg_1", T0, T0 + timedelta(seconds=1), 1) is not None
    url = store.sessions.kw["bind"].url
    engine = create_engine(url.render_as_string(hide_password=False))
    other = SqlAlchemyDeliveryStore(session_factory(engine), url.drivername.startswith("sqlite"))
    try:
        after = T0 + timedelta(seconds=2)
        claims = await asyncio.gather(
            store.claim("msg_1", after, after, 1), other.claim("msg_1", after, after, 1)
        )
    finally:
        await engine.dispose()
    assert sorted(c is not None for c in claims) == [False, True], claims
    [row] = await _outbox(store, "attempt")
    event = CloudEvent.from_bytes(row.payload.encode())
    assert (event.data["attempt"], event.data["outcome"]) == (1, "interrupted")
    assert event.id == attempt_event_id("msg_1", 1)


async def test_a_retry_after_a_failure_closes_nothing(store: SqlAlchemyDeliveryStore) -> None:
    await store.add_deliveries([_delivery()])
    first = await store.claim("msg_1", T0, T0 + timedelta(seconds=20), 3)
    assert first is not None and first.endpoint.secrets == ["whsec_AAAA"]
    failed = AttemptResult(status_code=503, duration_ms=1, error="HTTP 503")
    later = T0 + timedelta(seconds=1)
    await _record(store, first.delivery, 1, failed, later, T0, 3600)
    second = await store.claim("msg_1", later, later + timedelta(seconds=20), 3)
    assert second is not None and (second.attempt, second.interrupted) == (2, [])
    assert second.delivery.attempts == 2 and second.delivery.event_id == "e1"


async def test_a_deleted_webhook_ends_its_delivery_and_reports_the_interrupted_attempt(
    store: SqlAlchemyDeliveryStore,
) -> None:
    await store.add_deliveries([_delivery()])
    assert await store.claim("msg_1", T0, T0 + timedelta(seconds=1), 3) is not None
    async with store.sessions() as s:
        await s.execute(delete(WebhookRow))
        await s.commit()
    after = T0 + timedelta(seconds=2)
    final = await store.claim("msg_1", after, after, 3)
    assert final is not None and (final.attempt, final.interrupted) == (0, [1])
    assert (final.endpoint.id, final.endpoint.project, final.endpoint.enabled) == ("w1", "p", False)
    async with store.sessions() as s:
        delivery = await s.get(WebhookDeliveryRow, "msg_1")
        attempt = await s.get(WebhookAttemptRow, ("msg_1", 1))
    assert delivery is not None and delivery.status == "failed"
    assert delivery.last_error == "the webhook was deleted" and delivery.next_attempt_at is None
    assert attempt is not None and attempt.outcome == "interrupted"


async def test_two_replicas_never_own_the_same_attempt(store: SqlAlchemyDeliveryStore) -> None:
    """Each replica has its own engine and lock: only the compare-and-set keeps them apart."""
    await store.add_deliveries([_delivery(n) for n in range(1, 9)])
    url = store.sessions.kw["bind"].url
    engine = create_engine(url.render_as_string(hide_password=False))
    path = url.database if isinstance(store.hot, SqliteThreads) else None
    sqlite_threads = SqliteThreads(path) if path else None
    other = SqlAlchemyDeliveryStore(
        session_factory(engine), url.drivername.startswith("sqlite"), sqlite_threads
    )
    try:
        lease = T0 + timedelta(seconds=20)
        for n in range(1, 9):
            claims = await asyncio.gather(
                *(s.claim(f"msg_{n}", T0, lease, 3) for s in (store, other, store, other))
            )
            owned = [c for c in claims if c is not None]
            assert [c.attempt for c in owned] == [1], f"msg_{n}: {owned}"
    finally:
        if sqlite_threads is not None:
            await sqlite_threads.aclose()
        await engine.dispose()


@pytest.mark.parametrize("store", ["sqlite-threads"], indirect=True)  # its own threads
async def test_a_claim_waiting_for_another_writer_holds_up_no_read(
    store: SqlAlchemyDeliveryStore, tmp_path: Path
) -> None:
    await store.add_deliveries([_delivery()])
    other = sqlite3.connect(tmp_path / "rdev.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process writing: the claim's UPDATE waits
    try:
        claim = asyncio.create_task(store.claim("msg_1", T0, T0 + timedelta(seconds=20), 3))
        await asyncio.sleep(0)  # the claim is handed to its thread
        assert await asyncio.wait_for(store.due_endpoints(T0), 5) == ["w1"]
        assert await asyncio.wait_for(store.enabled_endpoints(["p"]), 5) != []
        assert not claim.done()
    finally:
        other.execute("ROLLBACK")
        other.close()
    owned = await asyncio.wait_for(claim, 15)
    assert owned is not None and owned.attempt == 1


# SQLite runs one write transaction at a time: only PostgreSQL can interleave two.
@pytest.mark.parametrize("store", ["postgres"], indirect=True)
async def test_two_replicas_disabling_one_endpoint_at_once_announce_it_once(
    store: SqlAlchemyDeliveryStore, request: pytest.FixtureRequest
) -> None:
    """Both read the endpoint as enabled before either disables it; the row lock makes
    the second disable match nothing, so it writes no second event."""
    engine = create_engine(request.getfixturevalue("postgres_url"))
    other = SqlAlchemyDeliveryStore(session_factory(engine), serialize_writes=False)
    await store.add_deliveries([_delivery(1), _delivery(2)])
    gone = AttemptResult(status_code=410, duration_ms=1, error="HTTP 410")
    first = await store.claim("msg_1", T0, T0, 5)
    second = await other.claim("msg_2", T0, T0, 5)
    assert first is not None and second is not None
    async with engine.connect() as holder:
        # Hold the endpoint's row so both records read it enabled and wait at the UPDATE.
        await holder.execute(select(WebhookRow.id).where(WebhookRow.id == "w1").with_for_update())
        both = asyncio.gather(
            _record(store, first.delivery, 1, gone, None, T0, 60),
            _record(other, second.delivery, 1, gone, None, T0, 60),
        )
        waiting = text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND query LIKE 'UPDATE webhooks%'"
        )
        async with asyncio.timeout(10):
            while await holder.scalar(waiting) != 2:
                await asyncio.sleep(0.01)
                # Statistics are read once per transaction unless the snapshot is dropped.
                await holder.execute(text("SELECT pg_stat_clear_snapshot()"))
        await holder.rollback()
    results = await both
    await engine.dispose()
    assert sorted(r.disabled_reason is not None for r in results) == [False, True]
    assert len(await _outbox(store, "disabled")) == 1
