"""The secrets bucket against a real JetStream: racing writers leave the newest value."""

from __future__ import annotations

from typing import Any

import pytest
from nats.js.errors import KeyNotFoundError

from rdev_api.adapters.nats_secret_store import NatsKvSecretStore
from rdev_common.broker import EmbeddedNats, connect
from rdev_common.sealing import Sealer, generate_key, unseal
from rdev_common.settings import CommonSettings
from rdev_common.streams import SECRETS_BUCKET, ensure_buckets, ensure_streams


@pytest.fixture
async def bucket(nats_server: EmbeddedNats) -> Any:
    nc = await connect(nats_server.url, "test")
    js = nc.jetstream()
    await ensure_streams(js, CommonSettings())
    await ensure_buckets(js, CommonSettings())
    yield js
    await nc.close()


async def stored(js: Any, sealer: Sealer, project: str) -> dict[str, str] | None:
    kv = await js.key_value(SECRETS_BUCKET)
    try:
        entry = await kv.get(project)
    except KeyNotFoundError:  # never written, or deleted
        return None
    return unseal(project, entry.value or b"", sealer)


async def test_a_write_that_lost_a_race_reads_again_and_leaves_the_newest(bucket: Any) -> None:
    sealer = Sealer([generate_key()])
    store = NatsKvSecretStore(bucket, sealer)
    database = {"alpha": {"TOKEN": "v1"}}

    async def now() -> dict[str, str] | None:
        return database.get("alpha")

    await store.sync("alpha", now)
    assert await stored(bucket, sealer, "alpha") == {"TOKEN": "v1"}

    reads = []

    async def slow_reader() -> dict[str, str] | None:
        # This writer read v1; before it writes, an update commits v2 and writes it.
        reads.append(dict(database["alpha"]))
        if len(reads) == 1:
            old = dict(database["alpha"])
            database["alpha"] = {"TOKEN": "v2"}
            await store.sync("alpha", now)
            return old
        return database.get("alpha")

    await store.sync("alpha", slow_reader)
    assert reads == [{"TOKEN": "v1"}, {"TOKEN": "v2"}], "the loser read the project again"
    assert await stored(bucket, sealer, "alpha") == {"TOKEN": "v2"}


async def test_a_project_gone_by_the_time_of_the_write_leaves_no_entry(bucket: Any) -> None:
    sealer = Sealer([generate_key()])
    store = NatsKvSecretStore(bucket, sealer)

    async def present() -> dict[str, str] | None:
        return {"TOKEN": "x"}

    async def gone() -> dict[str, str] | None:
        return None

    await store.sync("beta", gone)
    assert await stored(bucket, sealer, "beta") is None, "nothing written for no project"
    await store.sync("beta", present)
    await store.sync("beta", gone)
    assert await stored(bucket, sealer, "beta") is None
    await store.sync("beta", present)  # a project made again under the same id
    assert await stored(bucket, sealer, "beta") == {"TOKEN": "x"}


async def test_removing_the_entry_of_a_gone_project_does_not_remove_a_newer_one(
    bucket: Any,
) -> None:
    sealer = Sealer([generate_key()])
    store = NatsKvSecretStore(bucket, sealer)
    database: dict[str, dict[str, str]] = {"gamma": {"TOKEN": "old"}}

    async def now() -> dict[str, str] | None:
        return database.get("gamma")

    await store.sync("gamma", now)
    reads = 0

    async def deleted_then_made_again() -> dict[str, str] | None:
        # This writer saw the project deleted; before it removes the entry, the project
        # is made again and its entry written.
        nonlocal reads
        reads += 1
        if reads == 1:
            database["gamma"] = {"TOKEN": "new"}
            await store.sync("gamma", now)
            return None
        return database.get("gamma")

    await store.sync("gamma", deleted_then_made_again)
    assert reads == 2
    assert await stored(bucket, sealer, "gamma") == {"TOKEN": "new"}
