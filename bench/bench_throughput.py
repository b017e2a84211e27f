"""Sustained throughput: 2,000 `true` commands submitted concurrently, completion confirmed.

Every submit carries an Idempotency-Key, so a submit whose connection is reset can be
retried without a second run (the resets are counted). Completion is confirmed on the
project's SSE stream (opened before the first submit): every submitted id must arrive
there as `complete`; a sample is cross-checked with GET /commands/{id}.
Beside it: ssh multiplexed (sequential) and local spawn/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import time
import uuid

import aiohttp
import httpx

from bench import ssh_loop
from bench.common import Report, System, cpu_seconds, rdev_system

# Whose CPU is counted: the services, the broker and this benchmark's own client.
PROCESSES = ("api", "executor", "webhooks", "audit", "nats-server", "benchmark client")


async def watch_completions(
    system: System, project: str, done: dict[str, float], ready: asyncio.Event
) -> None:
    """Record the time each command's `complete` arrives on the project stream."""
    async with (
        httpx.AsyncClient(base_url=system.base_url, headers=system.headers, timeout=None) as c,
        c.stream("GET", f"/projects/{project}/events") as resp,
    ):
        buf = b""
        async for chunk in resp.aiter_raw():
            ready.set()
            buf += chunk
            *frames, buf = buf.split(b"\n\n")
            for frame in frames:
                # Heartbeats end their lines with CRLF, so one "frame" may hold two events.
                at = frame.find(b"event: complete")
                if at < 0:
                    continue
                data = frame[at:].split(b"data: ", 1)[1].split(b"\n", 1)[0]
                done.setdefault(json.loads(data)["stream_id"], time.perf_counter())


async def submit(
    client: aiohttp.ClientSession, url: str, headers: dict[str, str], resets: list[int]
) -> str:
    """One submit; a connection reset is retried, safely, under the same Idempotency-Key."""
    headers = {**headers, "Idempotency-Key": uuid.uuid4().hex}
    for attempt in range(4):
        try:
            async with client.post(url, json={"command": "true"}, headers=headers) as r:
                body = await r.read()
        except aiohttp.ClientError:
            if attempt == 3:
                raise
            resets.append(1)
            continue
        if r.status != 202:
            raise RuntimeError(f"submit: {r.status} {body!r}")
        return str(json.loads(body)["data"]["id"])
    raise AssertionError("unreachable")


async def submit_all(
    system: System, project: str, total: int, workers: int, resets: list[int]
) -> list[str]:
    """`total` submits from `workers` concurrent keep-alive connections.

    aiohttp rather than httpx: the client shares the machine's two cores with the
    system it measures, and httpx spends several times the CPU per request.
    """
    ids: list[str] = []
    pending = iter(range(total))
    url = system.url(f"/projects/{project}/shell")
    connector = aiohttp.TCPConnector(limit=workers)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:

        async def worker() -> None:
            for _ in pending:
                ids.append(await submit(client, url, system.headers, resets))

        await asyncio.gather(*(worker() for _ in range(workers)))
    return ids


async def measure_rdev(system: System, total: int, workers: int) -> dict[str, float]:
    project = system.create_project(f"bench-throughput-{uuid.uuid4().hex[:6]}")
    done: dict[str, float] = {}
    ready = asyncio.Event()
    watcher = asyncio.create_task(watch_completions(system, project, done, ready))
    await asyncio.wait_for(ready.wait(), 30)
    pids = {name: system.service_pids(name) for name in PROCESSES if name != "benchmark client"}
    pids["benchmark client"] = [os.getpid()]
    cpu0 = {name: cpu_of(each) for name, each in pids.items()}
    t0 = time.perf_counter()
    resets: list[int] = []
    ids = await submit_all(system, project, total, workers, resets)
    t_submitted = time.perf_counter() - t0
    deadline = time.monotonic() + 300
    while not set(ids) <= done.keys():
        if watcher.done():
            watcher.result()
            raise RuntimeError("the project stream ended early")
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(set(ids) & done.keys())}/{total} completed in time")
        await asyncio.sleep(0.05)
    t_all = max(done[i] for i in ids) - t0
    cpu = {name: cpu_of(each) - cpu0[name] for name, each in pids.items()}
    watcher.cancel()
    async with httpx.AsyncClient(base_url=system.base_url, headers=system.headers) as c:
        for command_id in ids[:: max(1, total // 20)]:
            state = (await c.get(f"/commands/{command_id}")).json()["data"]
            if state["status"] != "completed" or state.get("exit_code") != 0:
                raise RuntimeError(f"{command_id} is not a completed exit 0: {state}")
    return {
        "submitted_s": t_submitted,
        "completed_s": t_all,
        "count": len(set(ids)),
        "resets": len(resets),
        **{f"cpu_ms_{name}": 1000 * seconds / total for name, seconds in cpu.items()},
    }


def cpu_of(pids: list[int]) -> float:
    return sum(map(cpu_seconds, pids))


def sequential_rate(argv: list[str], runs: int) -> float:
    t0 = time.perf_counter()
    for _ in range(runs):
        subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    return runs / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--commands", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=64, help="concurrent submitters")
    parser.add_argument("--concurrency", default="8", help="RDEV_EXECUTOR_CONCURRENCY")
    parser.add_argument("--ssh-runs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --commands (median)")
    parser.add_argument(
        "--executors", type=int, default=1, help="executor processes (each --concurrency slots)"
    )
    args = parser.parse_args(argv)

    report = Report("throughput", f"sustained throughput of {args.commands:,} `true` commands")
    report.header()
    with (
        rdev_system(RDEV_EXECUTOR_CONCURRENCY=args.concurrency) as system,
        system.more_replicas("executor", args.executors - 1),
    ):
        rounds = [
            asyncio.run(measure_rdev(system, args.commands, args.workers))
            for _ in range(args.rounds)
        ]
    # The median round by rate, whole: its CPU figures belong to it.
    rounds.sort(key=lambda r: r["count"] / r["completed_s"])
    r = rounds[len(rounds) // 2]
    report.add(
        "rdev submit → all complete",
        f"{r['count']} cmds",
        r["count"] / r["completed_s"],
        "cmds/s",
        f"design ≥ 400; {args.workers} submitters, {args.executors} executor process(es) "
        f"of concurrency {args.concurrency}",
    )
    if len(rounds) > 1:
        each = " / ".join(f"{x['count'] / x['completed_s']:.0f}" for x in rounds)
        report.add(
            "", f"median of {len(rounds)} rounds", r["count"] / r["completed_s"], "cmds/s", each
        )
    submit_rate = r["count"] / r["submitted_s"]
    report.add("rdev submit only (202s)", f"{r['count']} POSTs", submit_rate, "req/s")
    report.add("rdev wall time", "first POST → last", r["completed_s"], "s")
    for name in PROCESSES:
        per = r[f"cpu_ms_{name}"]
        report.add(
            f"{name} CPU per command",
            "user + system",
            per,
            "ms",
            f"≤ {1000 / per:,.0f}/s per core" if name in ("api", "executor") else "",
        )
    total = sum(r[f"cpu_ms_{name}"] for name in PROCESSES)
    report.add("all of them", "CPU per command", total, "ms", f"2 cores: ≤ {2000 / total:,.0f}/s")
    report.add("rdev submits retried", "connection resets", r["resets"], "", "same Idempotency-Key")

    why_not = ssh_loop.unavailable()
    if why_not:
        report.note(f"ssh figures skipped: {why_not}")
    else:
        with ssh_loop.loopback_ssh() as ssh:
            rate = sequential_rate(ssh.warm("true"), args.ssh_runs)
        report.add("ssh multiplexed, sequential", f"{args.ssh_runs} cmds", rate, "cmds/s")
    rate = sequential_rate(["/bin/sh", "-c", "true"], 1000)
    report.add("local spawn, sequential", "1000 spawns", rate, "spawns/s")
    report.save()


if __name__ == "__main__":
    main()
