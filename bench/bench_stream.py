"""Streaming output: `seq 1 N` delivered to clients while the command runs.

(a) SSE `output` events (one per line) to `curl -N` (until curl exits: the server
    closes the stream after `complete`; the events are counted) and to the
    sseclient-py example of SSE_CLIENTS.md (printing to /dev/null);
(b) GET /commands/{id}/output?follow=true to curl (bytes to /dev/null);
beside ssh multiplexed `seq 1 N` (output discarded locally) and local `seq 1 N`.
Every rdev figure is live: the clock starts before the POST that submits the command.
A replay of the finished run (connect after `complete`) is measured too: it shows
the API's delivery rate without the executor in the path.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import ssh_loop
from bench.common import Report, System, rdev_system

ROOT = Path(__file__).resolve().parent.parent
MARK = b"\nevent: output\n"
PARTIAL = b',"partial":true}'


def seq_bytes(n: int) -> int:
    """Bytes `seq 1 n` writes: every number's digits plus a newline."""
    total, low = 0, 1
    while low <= n:
        high = min(n, low * 10 - 1)
        total += (high - low + 1) * (len(str(low)) + 1)
        low *= 10
    return total


@dataclass
class Delivery:
    seconds: float
    events: int
    partial: int
    bytes: int
    command_ms: float | None  # the run's own duration, from `complete`


def submit(client: httpx.Client, project: str, command: str) -> str:
    r = client.post(f"/projects/{project}/shell", json={"command": command})
    if r.status_code != 202:
        raise RuntimeError(f"submit: {r.status_code} {r.text}")
    return str(r.json()["data"]["id"])


def curl(system: System, path: str, out: int | None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["curl", "-sSN", "--fail", "-H", f"X-API-Key: {system.api_key}", system.url(path)],
        stdout=out if out is not None else subprocess.PIPE,
    )


@dataclass
class Counted:
    events: int  # `output` events
    partial: int  # of which pieces of a line the executor flushed before its end
    size: int
    tail: bytes

    def check(self, n: int) -> None:
        if self.events - self.partial != n:
            raise RuntimeError(f"{self.events:,} output events ({self.partial} partial), not {n:,}")


def count_sse(proc: subprocess.Popen[bytes]) -> Counted:
    """Output events and bytes read from curl's stdout until it exits."""
    assert isinstance(proc.stdout, io.BufferedReader)
    events = partial = total = 0
    carry = tail = b""
    while chunk := proc.stdout.read1(1 << 20):
        total += len(chunk)
        buf = carry + chunk
        events += buf.count(MARK)
        partial += buf.count(PARTIAL)
        carry = buf[-(len(MARK) - 1) :]
        tail = buf[-4096:]
    if proc.wait() != 0:
        raise RuntimeError(f"curl exited {proc.returncode}")
    return Counted(events, partial, total, tail)


def complete_ms(tail: bytes) -> float | None:
    _, _, rest = tail.rpartition(b"event: complete\ndata: ")
    return float(json.loads(rest.split(b"\n", 1)[0])["duration_ms"]) if rest else None


def sse_to_curl(
    system: System, client: httpx.Client, project: str, n: int
) -> tuple[Delivery, Delivery]:
    t0 = time.perf_counter()
    command_id = submit(client, project, f"seq 1 {n}")
    proc = curl(system, f"/projects/{project}/events?stream_id={command_id}", None)
    counted = count_sse(proc)
    seconds = time.perf_counter() - t0
    counted.check(n)
    replay = sse_replay(system, project, command_id, n)
    return Delivery(
        seconds, counted.events, counted.partial, counted.size, complete_ms(counted.tail)
    ), replay


def sse_replay(system: System, project: str, command_id: str, n: int) -> Delivery:
    t0 = time.perf_counter()
    proc = curl(system, f"/projects/{project}/events?stream_id={command_id}", None)
    counted = count_sse(proc)
    seconds = time.perf_counter() - t0
    counted.check(n)
    return Delivery(
        seconds, counted.events, counted.partial, counted.size, complete_ms(counted.tail)
    )


def sse_to_sseclient(system: System, project: str, n: int) -> float:
    """Seconds for the sseclient-py example's execute_command(), stdout to /dev/null."""
    runner = (
        "import json, sys, time\n"
        "from bench.sseclient_example import execute_command\n"
        "t0 = time.perf_counter()\n"
        "result = execute_command(*sys.argv[1:])\n"
        "sys.stderr.write(json.dumps({'s': time.perf_counter() - t0, 'result': result}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", runner, system.base_url, project, f"seq 1 {n}", system.api_key],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        check=True,
        timeout=600,
    )
    body = json.loads(done.stderr.decode().strip().splitlines()[-1])
    if not body["result"] or body["result"]["exit_code"] != 0:
        raise RuntimeError(f"sseclient example: {body}")
    return float(body["s"])


def output_follow(
    system: System, client: httpx.Client, project: str, n: int
) -> tuple[Delivery, Delivery]:
    t0 = time.perf_counter()
    command_id = submit(client, project, f"seq 1 {n}")
    size = curl_size(system, f"/commands/{command_id}/output?follow=true")
    seconds = time.perf_counter() - t0
    if size != seq_bytes(n):
        raise RuntimeError(f"/output gave {size:,} bytes, expected {seq_bytes(n):,}")
    t1 = time.perf_counter()
    curl_size(system, f"/commands/{command_id}/output")
    replay = time.perf_counter() - t1
    return Delivery(seconds, n, 0, size, None), Delivery(replay, n, 0, size, None)


def curl_size(system: System, path: str) -> int:
    done = subprocess.run(
        [
            "curl",
            "-sSN",
            "--fail",
            "-o",
            "/dev/null",
            "-w",
            "%{size_download}",
            "-H",
            f"X-API-Key: {system.api_key}",
            system.url(path),
        ],
        capture_output=True,
        check=True,
        timeout=600,
    )
    return int(done.stdout)


def best_of(argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def rdev_figures(report: Report, args: argparse.Namespace) -> None:
    big, small = args.lines, args.small
    with (
        rdev_system(RDEV_EXECUTOR_CONCURRENCY="2") as system,
        system.client(timeout=600) as client,
    ):
        project = system.create_project("bench-stream")
        submit(client, project, "true")  # warm the path once
        live, replay = sse_to_curl(system, client, project, small)
        report.add(f"SSE → curl -N, seq 1 {small:,}", "wall (POST → exit)", live.seconds, "s")
        ran = f"run itself {live.command_ms} ms; {live.partial} lines split"
        report.add("", "lines/s", small / live.seconds, "lines/s", ran)
        report.add("", "replay of the finished run", small / replay.seconds, "lines/s")
        live, replay = sse_to_curl(system, client, project, big)
        mb = live.bytes / 1e6
        report.add(f"SSE → curl -N, seq 1 {big:,}", "wall (POST → exit)", live.seconds, "s")
        report.add("", "lines/s", big / live.seconds, "lines/s", "design ≥ 1,000,000")
        ran = f"run itself {live.command_ms} ms; {live.partial} lines split"
        report.add("", "SSE bytes", mb, "MB", ran)
        report.add("", "replay of the finished run", big / replay.seconds, "lines/s")
        if args.sseclient_lines:
            for n in sorted({small, args.sseclient_lines}):
                seconds = sse_to_sseclient(system, project, n)
                report.add(f"SSE → sseclient-py, seq 1 {n:,}", "wall (call → return)", seconds, "s")
                report.add("", "lines/s", n / seconds, "lines/s")
        # Median of three, as for ssh: one run of half a second moves with the machine.
        runs = sorted((output_follow(system, client, project, big) for _ in range(3)), key=_wall)
        follow, replay = runs[1]
        each = " / ".join(f"{run.seconds:.3f}" for run, _ in runs)
        report.add(
            f"/output?follow=true, seq 1 {big:,}", "wall, median of 3", follow.seconds, "s", each
        )
        report.add("", "MB/s", follow.bytes / 1e6 / follow.seconds, "MB/s", "design ≥ ssh / 2")
        report.add("", "replay of the finished run", follow.bytes / 1e6 / replay.seconds, "MB/s")


def _wall(runs: tuple[Delivery, Delivery]) -> float:
    return runs[0].seconds


def reference_figures(report: Report, n: int) -> None:
    size = seq_bytes(n) / 1e6
    why_not = ssh_loop.unavailable()
    if why_not:
        report.note(f"ssh figures skipped: {why_not}")
    else:
        with ssh_loop.loopback_ssh() as ssh:
            seconds = best_of(ssh.warm(f"seq 1 {n}"), 3)
        report.add(f"ssh multiplexed seq 1 {n:,}", "wall (median of 3)", seconds, "s")
        report.add("", "MB/s", size / seconds, "MB/s")
        report.add("", "lines/s", n / seconds, "lines/s")
    seconds = best_of(["/bin/sh", "-c", f"seq 1 {n} > /dev/null"], 3)
    report.add(f"local seq 1 {n:,} > /dev/null", "wall (median of 3)", seconds, "s")
    report.add("", "MB/s", size / seconds, "MB/s")
    seconds = best_of(["/bin/sh", "-c", f"seq 1 {n} | cat > /dev/null"], 3)
    report.add(f"local seq 1 {n:,} | cat", "MB/s", size / seconds, "MB/s", "through a pipe")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=5_000_000)
    parser.add_argument("--small", type=int, default=1_000_000)
    parser.add_argument(
        "--sseclient-lines",
        type=int,
        default=1_000_000,
        help="lines for the sseclient-py example (0: skip); it parses in pure Python, "
        "so 5,000,000 takes minutes",
    )
    args = parser.parse_args(argv)
    report = Report("stream", "streaming `seq` output: SSE and /output, beside ssh and local")
    report.header()
    rdev_figures(report, args)
    reference_figures(report, args.lines)
    report.save()


if __name__ == "__main__":
    main()
