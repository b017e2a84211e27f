"""Webhook delivery: deliveries per second to a fast local receiver, and the delay added
between `command.completed` (the event's time) and its arrival at the receiver.

Throughput is measured with a replay (every delivery due at once, so the executor's pace
does not bound it), to one endpoint and to four; latency with sequential runs, each
waiting for its `command.completed` delivery before the next is submitted.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from bench.common import Report, System, latency_summary, rdev_system
from rdev_common.broker import free_port


class FastReceiver:
    """Answers 204 at once (HTTP/1.1 keep-alive) and notes when each delivery arrived."""

    def __init__(self) -> None:
        self.port = free_port()
        self.arrivals: list[tuple[float, str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                now = time.time()
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()
                with receiver.changed:
                    receiver.arrivals.append((now, self.path, json.loads(body)))
                    receiver.changed.notify_all()

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_count(self, count: int, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while len(self.arrivals) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"only {len(self.arrivals)} of {count} deliveries arrived")
                self.changed.wait(left)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def register(client: httpx.Client, project: str, url: str) -> str:
    r = client.post(f"/projects/{project}/webhooks", json={"url": url, "events": ["command.*"]})
    if r.status_code != 201:
        raise RuntimeError(f"register: {r.status_code} {r.text}")
    return str(r.json()["data"]["id"])


def completed_latency(system: System, receiver: FastReceiver, runs: int) -> list[float]:
    project = system.create_project("bench-wh-latency")
    delays = []
    with system.client() as client:
        register(client, project, receiver.url("/latency"))
        for _ in range(runs):
            before = len(receiver.arrivals)
            r = client.post(f"/projects/{project}/shell", json={"command": "true"})
            if r.status_code != 202:
                raise RuntimeError(f"submit: {r.status_code} {r.text}")
            receiver.wait_count(before + 3, timeout=120)  # requested, started, completed
            with receiver.lock:
                arrivals = receiver.arrivals[before:]
            for at, _, event in arrivals:
                if event["type"] == "dev.rdev.command.completed.v1":
                    delays.append(at - datetime.fromisoformat(event["time"]).timestamp())
    return delays


def replay_rate(system: System, receiver: FastReceiver, endpoints: int, runs: int) -> float:
    """Deliveries per second when `3 * runs` deliveries per endpoint become due at once."""
    project = system.create_project(f"bench-wh-rate-{endpoints}")
    with system.client() as client:
        hooks = [
            register(client, project, receiver.url(f"/rate{endpoints}/{i}"))
            for i in range(endpoints)
        ]
        before = len(receiver.arrivals)
        for _ in range(runs):
            client.post(f"/projects/{project}/shell", json={"command": "true"})
        receiver.wait_count(before + 3 * runs * endpoints)
        start_count = len(receiver.arrivals)
        t0 = time.time()
        total = 0
        for hook in hooks:
            r = client.post(f"/projects/{project}/webhooks/{hook}/replay", params={"since": "1"})
            total += len(r.json()["data"]["deliveries"])
        receiver.wait_count(start_count + total)
        with receiver.lock:
            last = max(at for at, _, _ in receiver.arrivals[start_count:])
    return total / (last - t0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency-runs", type=int, default=100)
    parser.add_argument("--rate-runs", type=int, default=200)
    args = parser.parse_args(argv)
    report = Report("webhooks", "webhook deliveries to a local receiver")
    report.header()
    receiver = FastReceiver()
    with rdev_system(RDEV_WEBHOOKS_ALLOW_PRIVATE_TARGETS="true") as system:
        s = latency_summary(completed_latency(system, receiver, args.latency_runs))
        subject = "command.completed → receiver"
        report.add(subject, f"p50 (n={s['runs']})", s["p50_ms"], "ms", "event time to arrival")
        report.add(subject, "p99", s["p99_ms"], "ms")
        report.add(subject, "p90 / max", f"{s['p90_ms']:.1f} / {s['max_ms']:.1f}", "ms")
        for endpoints in (1, 4):
            rate = replay_rate(system, receiver, endpoints, args.rate_runs)
            report.add(
                f"replay to {endpoints} endpoint(s)",
                "deliveries/s",
                rate,
                "1/s",
                f"{3 * args.rate_runs} deliveries per endpoint",
            )
    report.note("signed, attempt recorded in SQLite and published on RDEV_WEBHOOKS per delivery")
    report.save()


if __name__ == "__main__":
    main()
