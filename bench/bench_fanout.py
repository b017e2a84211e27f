"""Many clients, many runs, more executors: how the costs grow with the number of them.

1. watchers: `--watchers` SSE clients of one run that prints `--rate` lines/s for
   `--seconds` (each line its print time): every watcher must receive every line;
   lag = receipt - print time of the oldest line of each chunk a watcher reads (p50/p99
   over all watchers); api CPU per delivered line.
2. runs: `--runs` runs at once (executor concurrency raised to match), each `yes` for
   `--run-seconds`: aggregate lines/s, and fairness = the slowest run's lines/s over the
   mean (from each run's `completed`: lines, duration).
3. executors: `--commands` concurrent `true` (bench_throughput's measurement) with 1, 2
   and 4 executor processes: commands/s and CPU per command of each process.

    .venv/bin/python -m bench.bench_fanout [watchers runs executors] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from bench.bench_throughput import PROCESSES, measure_rdev
from bench.common import Report, System, cpu_seconds, percentile, rdev_system
from rdev_common import subjects
from rdev_common.broker import connect
from rdev_common.streams import RUNS

PRINTER = """
import sys, time
rate, seconds = int(sys.argv[1]), float(sys.argv[2])
tick = 0.01
per_tick = max(1, int(rate * tick))
start = time.time()
n = 0
while n < rate * seconds:
    now = time.time()
    sys.stdout.write("".join(f"{now:.6f}\\n" for _ in range(per_tick)))
    sys.stdout.flush()
    n += per_tick
    time.sleep(max(0.0, start + n / rate - time.time()))
"""


def submit(system: System, project: str, command: str) -> str:
    with httpx.Client(base_url=system.base_url, headers=system.headers, timeout=60) as c:
        r = c.post(f"/projects/{project}/shell", json={"command": command})
        if r.status_code != 202:
            raise RuntimeError(f"submit: {r.status_code} {r.text}")
        return str(r.json()["data"]["id"])


async def watcher(session: aiohttp.ClientSession, url: str, lags: list[float]) -> int:
    """Lines received on one run's SSE until `complete`."""
    lines = 0
    buf = b""
    async with session.get(url) as resp:
        connected = time.time()
        async for chunk in resp.content.iter_any():
            now = time.time()
            buf += chunk
            cut = buf.rfind(b"\n\n")
            if cut < 0:
                continue
            seg, buf = buf[: cut + 2], buf[cut + 2 :]
            got = seg.count(b"event: output\n")
            if got:
                lines += got
                at = seg.find(b'{"line":"') + 9
                printed = float(seg[at : seg.index(b'"', at)])
                if printed >= connected:  # not history replayed to a late watcher
                    lags.append(now - printed)
            if b"event: complete" in seg:
                return lines
    raise RuntimeError("the stream ended before complete")


async def watchers_once(system: System, n: int, rate: int, seconds: float) -> dict[str, float]:
    project = system.create_project(f"fanout-{uuid.uuid4().hex[:6]}")
    script = system.data_dir / "printer.py"
    script.write_text(PRINTER)
    # Time for every watcher to connect before the first line.
    wait = max(2.0, n / 100)
    cid = submit(system, project, f"sleep {wait}; {sys.executable} {script} {rate} {seconds}")
    url = f"{system.base_url}/projects/{project}/events?stream_id={cid}"
    api = system.service_pid("api")
    lags: list[float] = []
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(headers=system.headers, connector=conn) as session:
        c0 = cpu_seconds(api)
        counts = await asyncio.gather(*(watcher(session, url, lags) for _ in range(n)))
        api_cpu = cpu_seconds(api) - c0
    expected = int(rate * seconds) // max(1, int(rate * 0.01)) * max(1, int(rate * 0.01))
    ms = [x * 1000 for x in lags]
    return {
        "watchers": n,
        "expected_lines": expected,
        "min_lines": min(counts),
        "all_complete": float(all(c == expected for c in counts)),
        "lag_p50_ms": percentile(ms, 50),
        "lag_p99_ms": percentile(ms, 99),
        "lag_max_ms": max(ms),
        "api_us_per_line": api_cpu * 1e6 / max(1, sum(counts)),
    }


async def completed_of(system: System, project: str, ids: list[str]) -> list[dict[str, Any]]:
    """Each run's `completed` data, read from RDEV_RUNS as the api's broker identity."""
    env_bytes = Path(f"/proc/{system.service_pid('api')}/environ").read_bytes()
    env = dict(item.decode().split("=", 1) for item in env_bytes.split(b"\0") if b"=" in item)
    nc = await connect(
        env["RDEV_NATS_URL"], "bench-fanout", env.get("RDEV_NATS_USER"),
        env.get("RDEV_NATS_PASSWORD"),
    )  # fmt: skip
    js = nc.jetstream()
    out = []
    for cid in ids:
        deadline = time.monotonic() + 600
        while True:
            try:
                msg = await js.get_last_msg(
                    RUNS, subjects.run_event(project, cid, "completed"), direct=True
                )
                out.append(json.loads(msg.data or b"{}")["data"])
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
    await nc.close()
    return out


def runs_once(system: System, n: int, seconds: float) -> dict[str, float]:
    project = system.create_project(f"runs-{uuid.uuid4().hex[:6]}")
    command = f"timeout {seconds} yes 'a line of build output, as long as many are' || true"
    ids = [submit(system, project, command) for _ in range(n)]
    done = asyncio.run(completed_of(system, project, ids))
    rates = [d["lines"] / max(d["duration_ms"] / 1000, 1e-3) for d in done]
    total_lines = sum(d["lines"] for d in done)
    mean = sum(rates) / len(rates)
    return {
        "runs": n,
        "aggregate_lines_per_s": total_lines / seconds,
        "mean_run_lines_per_s": mean,
        "slowest_share": min(rates) / mean,
        "fastest_share": max(rates) / mean,
    }


def main(args: argparse.Namespace) -> int:
    report = Report("fanout", "watchers, concurrent runs, executor processes")
    report.header()
    if "watchers" in args.parts:
        with rdev_system() as system:
            r = asyncio.run(watchers_once(system, args.watchers, args.rate, args.seconds))
        what = f"{args.watchers} watchers, {args.rate:,} lines/s"
        report.add(what, "every line to all", "yes" if r["all_complete"] else "NO", "",
                   f"min {r['min_lines']:,} of {r['expected_lines']:,}")  # fmt: skip
        for key in ("lag_p50_ms", "lag_p99_ms", "lag_max_ms"):
            report.add(what, key, r[key], "ms", "target p99 ≤ 200" if "p99" in key else "")
        report.add(what, "api CPU per line", r["api_us_per_line"], "µs", "delivered lines")
    if "runs" in args.parts:
        with rdev_system(RDEV_EXECUTOR_CONCURRENCY=str(args.runs)) as system:
            r = runs_once(system, args.runs, args.run_seconds)
        what = f"{args.runs} runs of `yes`, {args.run_seconds:g}s"
        report.add(what, "aggregate", r["aggregate_lines_per_s"], "lines/s")
        report.add(what, "slowest / mean", r["slowest_share"], "x", "target ≥ 0.5")
        report.add(what, "fastest / mean", r["fastest_share"], "x")
    if "executors" in args.parts:
        with rdev_system(RDEV_EXECUTOR_CONCURRENCY="8") as system:
            for n in (1, 2, 4):
                with system.more_replicas("executor", n - 1):
                    r = asyncio.run(measure_rdev(system, args.commands, 64))
                what = f"{n} executor process(es)"
                report.add(what, f"{r['count']} `true`", r["count"] / r["completed_s"], "cmds/s")
                cpu = {p: r[f"cpu_ms_{p}"] for p in PROCESSES}
                each = ", ".join(f"{p} {v:.2f}" for p, v in cpu.items())
                report.add(what, "CPU per command", sum(cpu.values()), "ms", each)
    report.note(f"load average at the end: {os.getloadavg()}")
    report.save()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", default=["watchers", "runs", "executors"])
    parser.add_argument("--watchers", type=int, default=500)
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--run-seconds", type=float, default=10)
    parser.add_argument("--commands", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="50 watchers, 20 runs, 500 commands")
    ns = parser.parse_args()
    if ns.quick:
        ns.watchers, ns.rate, ns.seconds = 50, 1000, 5
        ns.runs, ns.run_seconds, ns.commands = 20, 5, 500
    sys.exit(main(ns))
