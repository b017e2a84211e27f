"""`rdev events replay|info` against a real broker: exact ranges, filters, CloudEvents lines."""

from __future__ import annotations

import asyncio
import json

import pytest

from rdev_common.broker import EmbeddedNats
from rdev_common.streams import RUNS
from tests.audit.support import env_for, publish_runs, rdev_cli, stream_last_seq

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def env(nats_server: EmbeddedNats, tmp_path) -> dict[str, str]:
    return env_for(nats_server.url, f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}", tmp_path)


async def test_replay_ranges_filters_and_info(js, env: dict[str, str]) -> None:
    alpha = await publish_runs(js, "alpha", 30, actor="k1")
    await publish_runs(js, "beta", 20, actor="k2")
    last = await stream_last_seq(js, RUNS)
    assert last == 50 * 4

    everything = await asyncio.to_thread(rdev_cli, env, "events", "replay", "--stream", RUNS)
    assert everything.returncode == 0, everything.stderr
    events = [json.loads(line) for line in everything.stdout.splitlines()]
    assert len(events) == last
    assert all(e["specversion"] == "1.0" and e["type"].startswith("dev.rdev.") for e in events)
    # Output, stored in binary mode, prints as the same event in JSON: text as `data`.
    outputs = [e for e in events if e["type"] == "dev.rdev.command.output.v2"]
    assert len(outputs) == 50
    assert {(e["data"], e["datacontenttype"], e["firstline"]) for e in outputs} == {
        ("x", "text/plain; charset=utf-8", "1")
    }

    only_alpha = await asyncio.to_thread(
        rdev_cli, env, "events", "replay", "--stream", RUNS, "--subject", "rdev.runs.alpha.>"
    )
    subjects = {json.loads(line)["subject"] for line in only_alpha.stdout.splitlines()}
    assert subjects == set(alpha)
    assert len(only_alpha.stdout.splitlines()) == 30 * 4

    window = await asyncio.to_thread(
        rdev_cli, env, "events", "replay", "--stream", RUNS, "--from-seq", "11", "--to-seq", "20"
    )
    assert len(window.stdout.splitlines()) == 10

    pretty = await asyncio.to_thread(
        rdev_cli, env, "events", "replay", "--stream", RUNS, "--to-seq", "1", "--format", "pretty"
    )
    assert pretty.stdout.split()[0] == "1" and "dev.rdev.command.requested.v1" in pretty.stdout

    future = await asyncio.to_thread(
        rdev_cli, env, "events", "replay", "--stream", RUNS, "--since", "2999-01-01T00:00:00"
    )
    assert future.returncode == 0 and future.stdout == ""

    info = await asyncio.to_thread(rdev_cli, env, "events", "info", "--json")
    streams = {s["name"]: s for s in json.loads(info.stdout)["streams"]}
    assert streams[RUNS]["last_seq"] == last and streams["RDEV_LIFECYCLE"]["messages"] >= 0

    table = await asyncio.to_thread(rdev_cli, env, "events", "info")
    assert table.returncode == 0, table.stderr
    assert RUNS in table.stdout and "durable consumers" in table.stdout
