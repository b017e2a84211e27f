"""e2e latency of `true`: POST /projects/{id}/shell → SSE `complete` received.

Two ways, sequential runs over one keep-alive HTTP client each: the POST answered
202, then GET /projects/{id}/events?stream_id= (two requests); and the POST with
`Accept: text/event-stream`, answered by the run's event stream (one request, as
`rdev run` does it). Beside them, ssh on loopback (cold and ControlMaster-
multiplexed) and the raw local spawn of `/bin/sh -c true`.
"""

from __future__ import annotations

import argparse
import subprocess
import time

import httpx

from bench import ssh_loop
from bench.common import Report, System, latency_summary, rdev_system

WARMUP = 20


def seconds_to_complete(resp: httpx.Response, t0: float) -> float:
    """Seconds from `t0` until `complete` arrived on the event stream `resp`.

    Reads to the end (the server closes after `complete`) so the connection is reused.
    """
    t_done = None
    seen = b""
    for chunk in resp.iter_raw():
        if t_done is None:
            seen = seen[-32:] + chunk
            if b"event: complete" in seen:
                t_done = time.perf_counter() - t0
    if t_done is None:
        raise RuntimeError(f"no complete event on {resp.request.url}")
    return t_done


def rdev_once(client: httpx.Client, project: str) -> tuple[float, float]:
    """(seconds to the 202, seconds to `complete`) of one `true`: POST, then GET events."""
    t0 = time.perf_counter()
    r = client.post(f"/projects/{project}/shell", json={"command": "true"})
    t_post = time.perf_counter() - t0
    if r.status_code != 202:
        raise RuntimeError(f"submit: {r.status_code} {r.text}")
    command_id = r.json()["data"]["id"]
    events = f"/projects/{project}/events"
    with client.stream("GET", events, params={"stream_id": command_id}) as resp:
        return t_post, seconds_to_complete(resp, t0)


def rdev_one_request(client: httpx.Client, project: str) -> float:
    """Seconds from the POST to `complete` when the POST's answer is the event stream."""
    t0 = time.perf_counter()
    accept = {"Accept": "text/event-stream"}
    shell = f"/projects/{project}/shell"
    with client.stream("POST", shell, json={"command": "true"}, headers=accept) as resp:
        if resp.status_code != 200:
            resp.read()
            raise RuntimeError(f"submit: {resp.status_code} {resp.text}")
        return seconds_to_complete(resp, t0)


def measure_one_request(system: System, runs: int) -> list[float]:
    project = system.create_project("bench-latency-one")
    totals = []
    with system.client() as client:
        for i in range(WARMUP + runs):
            t_done = rdev_one_request(client, project)
            if i >= WARMUP:
                totals.append(t_done)
    return totals


def measure_rdev(system: System, runs: int) -> tuple[list[float], list[float]]:
    project = system.create_project("bench-latency")
    posts, totals = [], []
    with system.client() as client:
        for i in range(WARMUP + runs):
            t_post, t_done = rdev_once(client, project)
            if i >= WARMUP:
                posts.append(t_post)
                totals.append(t_done)
    return posts, totals


def local_spawn(runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(["/bin/sh", "-c", "true"], check=True)
        times.append(time.perf_counter() - t0)
    return times


def add_latency(report: Report, subject: str, seconds: list[float], note: str = "") -> None:
    s = latency_summary(seconds)
    report.add(subject, f"p50 (n={s['runs']})", s["p50_ms"], "ms", note)
    report.add(subject, "p99", s["p99_ms"], "ms")
    report.add(subject, "p90 / max", f"{s['p90_ms']:.1f} / {s['max_ms']:.1f}", "ms")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--ssh-cold-runs", type=int, default=100)
    parser.add_argument("--concurrency", default="4", help="RDEV_EXECUTOR_CONCURRENCY")
    args = parser.parse_args(argv)

    report = Report("latency", "e2e latency of `true` (sequential, keep-alive client)")
    report.header()
    with rdev_system(RDEV_EXECUTOR_CONCURRENCY=args.concurrency) as system:
        posts, totals = measure_rdev(system, args.runs)
        one_request = measure_one_request(system, args.runs)
    add_latency(report, "rdev POST → SSE complete", totals, "design: p50 ≤ 10, p99 ≤ 30")
    add_latency(report, "  of which POST → 202", posts)
    add_latency(
        report, "rdev POST answered by the SSE stream", one_request, "one request, as `rdev run`"
    )

    why_not = ssh_loop.unavailable()
    if why_not:
        report.note(f"ssh figures skipped: {why_not}")
    else:
        with ssh_loop.loopback_ssh() as ssh:
            warm = ssh_loop.timed_runs(ssh.warm("true"), args.runs)
            cold = ssh_loop.timed_runs(ssh.cold("true"), args.ssh_cold_runs)
        add_latency(report, "ssh multiplexed (ControlMaster)", warm)
        add_latency(report, "ssh cold (new connection)", cold)
        report.note("ssh: root's ~/.bashrc kept out with sshd SetEnv HOME=<empty dir>")
    add_latency(report, "local spawn /bin/sh -c true", local_spawn(args.runs))
    report.save()


if __name__ == "__main__":
    main()
