"""Executor and API peak RSS while streaming 1 GB of output to an SSE client.

The command writes 10 M lines of 100 characters (`head -c 1000000000 /dev/zero |
tr '\\0' x | fold -w 100`); `curl -N` reads its SSE stream to the end. VmRSS of this
system's rdev_api and rdev_executor processes (and nats-server, for context) is
sampled every 100 ms from /proc/<pid>/status: start, peak, and points along the run
show whether memory grows with the output.
"""

from __future__ import annotations

import argparse
import subprocess
import threading
import time
from pathlib import Path

from bench.bench_stream import Counted, count_sse, curl, submit
from bench.common import Report, RssSampler, System, rdev_system


def nats_pid(system: System) -> int | None:
    """The embedded nats-server is a child of this system's `rdev up`."""
    pid = system.process.pid
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    for child in children:
        try:
            if b"nats-server" in Path(f"/proc/{child}/cmdline").read_bytes():
                return int(child)
        except OSError:
            continue
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bytes", type=int, default=1_000_000_000)
    parser.add_argument("--max-seconds", type=float, default=300)
    args = parser.parse_args(argv)
    lines = args.bytes // 100
    command = f"head -c {args.bytes} /dev/zero | tr '\\0' x | fold -w 100"

    report = Report("memory", f"peak RSS while streaming {args.bytes / 1e9:g} GB over SSE")
    report.header()
    with rdev_system(RDEV_EXECUTOR_CONCURRENCY="2") as system, system.client() as client:
        project = system.create_project("bench-memory")
        submit(client, project, "true")  # the services have served one run: a fair start
        pids = {"api": system.service_pid("api"), "executor": system.service_pid("executor")}
        nats = nats_pid(system)
        if nats:
            pids["nats-server"] = nats
        with RssSampler(pids) as sampler:
            time.sleep(0.5)
            t0 = time.perf_counter()
            command_id = submit(client, project, command)
            proc = curl(system, f"/projects/{project}/events?stream_id={command_id}", None)
            counted = _read_bounded(proc, args.max_seconds)
            seconds = time.perf_counter() - t0
            time.sleep(0.5)
        samples = sampler.samples
    if counted is None:
        report.note(f"the client was stopped after {args.max_seconds:g} s, before the end")
    else:
        counted.check(lines)
        report.add("SSE → curl -N", f"{lines:,} lines", seconds, "s", f"{lines / seconds:,.0f}/s")
    _report_rss(report, samples)
    report.save()


def _read_bounded(proc: subprocess.Popen[bytes], max_seconds: float) -> Counted | None:
    """count_sse(proc), unless that takes over `max_seconds` (then curl is stopped: None)."""
    result: list[Counted] = []
    reader = threading.Thread(target=lambda: result.append(count_sse(proc)), daemon=True)
    reader.start()
    reader.join(max_seconds)
    if reader.is_alive():
        proc.kill()
        reader.join()
        return None
    return result[0] if result else None


def _report_rss(report: Report, samples: list[tuple[float, dict[str, int]]]) -> None:
    names = list(samples[0][1])
    points = [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0]
    for name in names:
        series = [(t, rss[name]) for t, rss in samples if rss[name]]
        start = series[0][1] / 1024
        peak = max(kib for _, kib in series) / 1024
        along = " ".join(
            f"{series[min(len(series) - 1, int(p * (len(series) - 1)))][1] / 1024:.0f}"
            for p in points
        )
        report.add(f"{name} RSS", "start", start, "MiB")
        report.add("", "peak", peak, "MiB", f"growth {peak - start:+.0f} MiB")
        report.add("", "at 0/10/25/50/75/90/100 %", along, "MiB", f"{len(series)} samples")
    report.rows.append({"subject": "samples", "series": samples})


if __name__ == "__main__":
    main()
