"""Under the broker's identities only the api and the executors define streams: webhooks and
audit check them, write nothing when they are as wanted, and wait while they are missing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client

from rdev_common import streams
from rdev_common.broker import EmbeddedNats, connect
from rdev_common.nats_auth import authorization_block, generate_passwords
from rdev_common.settings import CommonSettings

PASSWORDS = generate_passwords()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedNats]:
    server = EmbeddedNats(tmp_path / "nats", config=authorization_block(PASSWORDS))
    server.start()
    yield server
    server.stop(kill=True)


@pytest.fixture
async def as_user(broker: EmbeddedNats) -> AsyncIterator[dict[str, tuple[Client, list[str]]]]:
    clients: dict[str, tuple[Client, list[str]]] = {}
    for user in ("api", "webhooks", "audit"):
        errors: list[str] = []

        async def on_error(exc: Exception, errors: list[str] = errors) -> None:
            errors.append(str(exc))

        nc = await nats.connect(
            broker.url,
            user=user,
            password=PASSWORDS[user],
            inbox_prefix=f"_INBOX_{user}",
            error_cb=on_error,
        )
        clients[user] = (nc, errors)
    yield clients
    for nc, _ in clients.values():
        await nc.close()


async def test_webhooks_waits_for_the_api_to_define_the_streams(
    as_user: dict[str, tuple[Client, list[str]]],
) -> None:
    settings = CommonSettings()
    webhooks, webhook_errors = as_user["webhooks"]
    waiting = asyncio.create_task(streams.ensure_streams(webhooks.jetstream(), settings))
    # Its create is refused: it cannot define what it only reads.
    async with asyncio.timeout(30):
        while not any("permissions violation" in e for e in webhook_errors):
            await asyncio.sleep(0.05)
    assert not waiting.done()
    api, api_errors = as_user["api"]
    await streams.ensure_streams(api.jetstream(), settings)
    async with asyncio.timeout(60):
        await waiting
    assert api_errors == []
    names = {s.config.name for s in await api.jetstream().streams_info()}
    assert set(streams.ALL_STREAMS) <= names


async def test_streams_as_wanted_cost_a_reader_no_write(
    as_user: dict[str, tuple[Client, list[str]]],
) -> None:
    settings = CommonSettings()
    api, _ = as_user["api"]
    await streams.ensure_streams(api.jetstream(), settings)
    audit, audit_errors = as_user["audit"]
    async with asyncio.timeout(30):  # would take a request timeout per stream if it wrote
        await streams.ensure_streams(audit.jetstream(), settings)
    await audit.flush()
    assert audit_errors == []


async def test_a_service_without_the_right_password_stops_at_once(broker: EmbeddedNats) -> None:
    with pytest.raises(PermissionError, match="RDEV_NATS_PASSWORD"):
        async with asyncio.timeout(30):
            await connect(broker.url, "test", user="audit", password="wrong")
    with pytest.raises(PermissionError, match="without credentials"):
        async with asyncio.timeout(30):
            await connect(broker.url, "test")
