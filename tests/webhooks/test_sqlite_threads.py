"""The store's hot reads through `sqlite3` answer as SQLAlchemy does, and are never stale."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rdev_common.db.engine import create_engine, session_factory, sqlite_file
from rdev_common.db.migrate import upgrade
from rdev_common.db.tables import WebhookDeliveryRow, WebhookRow
from rdev_webhooks.adapters.sqlalchemy_store import SqlAlchemyDeliveryStore
from rdev_webhooks.adapters.sqlite_threads import SqliteThreads
from rdev_webhooks.domain.model import Endpoint

NOW = datetime.now(UTC)


def _hook(id_: str, project: str, **kwargs: object) -> WebhookRow:
    values: dict[str, object] = {
        "url": f"https://{id_}.example.com/hook",
        "events": ["command.*"],
        "enabled": True,
        "secret": f"whsec_{id_}",
        "created_at": NOW,
        "updated_at": NOW,
        **kwargs,
    }
    return WebhookRow(id=id_, project=project, **values)


def _delivery(n: int, webhook_id: str, status: str, due: datetime | None) -> WebhookDeliveryRow:
    return WebhookDeliveryRow(
        id=f"msg_{n}",
        webhook_id=webhook_id,
        project="p",
        event_id=f"e{n}",
        event_type="dev.rdev.command.completed.v1",
        stream="RDEV_LIFECYCLE",
        seq=n,
        dedup_key=f"{webhook_id}:e{n}",
        payload="{}",
        status=status,
        attempts=0,
        next_attempt_at=due,
        created_at=NOW,
        updated_at=NOW,
    )


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'rdev.db'}"
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def reads(tmp_path: Path) -> AsyncIterator[SqliteThreads]:
    reads = SqliteThreads(str(tmp_path / "rdev.db"))
    yield reads
    await reads.aclose()


def _by_id(endpoints: list[Endpoint]) -> dict[str, Endpoint]:
    return {e.id: e for e in endpoints}


async def test_enabled_endpoints_as_the_store_reads_them(
    sessions: async_sessionmaker[AsyncSession], reads: SqliteThreads
) -> None:
    async with sessions() as s:
        s.add_all(
            [
                _hook(
                    "w1",
                    "p",
                    previous_secret="whsec_old1",
                    previous_secret_expires_at=NOW + timedelta(hours=1),
                ),
                _hook(
                    "w2",
                    "p",
                    previous_secret="whsec_old2",
                    previous_secret_expires_at=NOW - timedelta(hours=1),
                ),
                _hook("w3", "p", enabled=False, disabled_reason="by request"),
                _hook("w4", "q", events=["*", "command.completed"], description="ünïcode"),
                _hook("w5", "r"),
            ]
        )
        await s.commit()
    store = SqlAlchemyDeliveryStore(sessions, serialize_writes=True)
    read = _by_id(await reads.enabled_endpoints(["p", "q", "absent"]))
    assert read == _by_id(await store.enabled_endpoints(["p", "q", "absent"]))
    assert set(read) == {"w1", "w2", "w4"}
    assert read["w1"].secrets == ["whsec_w1", "whsec_old1"]  # rotation overlap
    assert read["w2"].secrets == ["whsec_w2"]  # the old secret expired
    assert read["w4"].events == ["*", "command.completed"] and read["w4"].enabled
    assert await reads.enabled_endpoints([]) == []


async def test_due_endpoints_as_the_store_reads_them(
    sessions: async_sessionmaker[AsyncSession], reads: SqliteThreads
) -> None:
    tick = timedelta(microseconds=1)
    async with sessions() as s:
        s.add_all(
            [
                _delivery(1, "w-now", "pending", NOW),
                _delivery(2, "w-later", "pending", NOW + tick),
                _delivery(3, "w-earlier", "pending", NOW - tick),
                _delivery(4, "w-earlier", "pending", NOW - timedelta(days=3)),
                _delivery(5, "w-done", "succeeded", NOW - timedelta(hours=1)),
                _delivery(6, "w-failed", "failed", None),
            ]
        )
        await s.commit()
    store = SqlAlchemyDeliveryStore(sessions, serialize_writes=True)
    for at in (NOW - tick, NOW, NOW + tick, NOW + timedelta(days=1)):
        assert sorted(await reads.due_endpoints(at)) == sorted(await store.due_endpoints(at)), at
    assert sorted(await reads.due_endpoints(NOW)) == ["w-earlier", "w-now"]


async def test_a_commit_after_a_read_is_in_the_next_read(
    sessions: async_sessionmaker[AsyncSession], reads: SqliteThreads
) -> None:
    assert await reads.enabled_endpoints(["p"]) == []
    assert await reads.due_endpoints(NOW) == []
    async with sessions() as s:
        s.add(_hook("w1", "p"))
        s.add(_delivery(1, "w1", "pending", NOW))
        await s.commit()
    assert [e.id for e in await reads.enabled_endpoints(["p"])] == ["w1"]
    assert await reads.due_endpoints(NOW) == ["w1"]
    async with sessions() as s:
        hook = await s.get(WebhookRow, "w1")
        assert hook is not None
        hook.enabled = False
        await s.commit()
    assert await reads.enabled_endpoints(["p"]) == []


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite+aiosqlite:////data/rdev.db", "/data/rdev.db"),
        ("sqlite+aiosqlite:///:memory:", None),
        ("sqlite+aiosqlite://", None),
        ("sqlite+aiosqlite:///file:rdev?mode=memory&uri=true", None),
        ("postgresql+psycopg://rdev@db/rdev", None),
    ],
)
def test_only_a_plain_sqlite_file_is_read_directly(url: str, path: str | None) -> None:
    assert sqlite_file(make_url(url)) == path
