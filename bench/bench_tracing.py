"""Overhead of tracing on e2e latency: POST → SSE `complete` of `true`, tracing off vs on.

    python -m bench.bench_tracing [--runs 200]

Three private systems (`rdev up`) run side by side:

- off:      OTEL_SDK_DISABLED=true (no SDK; an incoming context is only passed on);
- recorded: the default, spans recorded (trace ids in logs, context through NATS)
            but not exported;
- exported: spans exported over OTLP/HTTP (batched) to a local collector stand-in
            that answers 200 and counts what it receives.

Runs are interleaved round-robin (one run on each system in turn), so load from
anything else on the machine falls on all three alike. Each run is the sequence
of bench_latency: one keep-alive client, POST then read the SSE stream to `complete`.
Beside latency, the CPU time the four service processes of each system spent
during the runs (user + system, from /proc), per command: on a busy machine
latency is mostly waiting for a core, while CPU time is the cost itself.
"""

from __future__ import annotations

import argparse
import os
import threading
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench.bench_latency import WARMUP, rdev_once
from bench.common import Report, System, latency_summary, rdev_system

SERVICES = ("api", "executor", "webhooks", "audit")
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(system: System) -> float:
    """User + system CPU time of the system's four service processes so far."""
    total = 0
    for service in SERVICES:
        with open(f"/proc/{system.service_pid(service)}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


class Collector:
    """Stands in for an OpenTelemetry collector: accepts OTLP/HTTP posts, counts them."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                collector.requests += 1
                collector.bytes += len(body)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def configurations(collector: Collector) -> dict[str, dict[str, str]]:
    return {
        "off": {"OTEL_SDK_DISABLED": "true"},
        "recorded": {},
        "exported": {
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
            "OTEL_TRACES_EXPORTER": "otlp",
        },
    }


def interleaved(
    systems: dict[str, System], runs: int
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Latencies of each system, and its services' CPU seconds over the measured runs."""
    totals: dict[str, list[float]] = {name: [] for name in systems}
    cpu: dict[str, float] = {}
    with ExitStack() as stack:
        clients = {name: stack.enter_context(s.client()) for name, s in systems.items()}
        projects = {name: s.create_project("bench-tracing") for name, s in systems.items()}
        for i in range(WARMUP + runs):
            if i == WARMUP:
                cpu = {name: -cpu_seconds(s) for name, s in systems.items()}
            for name, client in clients.items():
                _, t_done = rdev_once(client, projects[name])
                if i >= WARMUP:
                    totals[name].append(t_done)
        for name, s in systems.items():
            cpu[name] += cpu_seconds(s)
    return totals, cpu


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--concurrency", default="2", help="RDEV_EXECUTOR_CONCURRENCY")
    args = parser.parse_args(argv)

    report = Report("tracing", "tracing overhead on e2e latency of `true` (interleaved)")
    collector = Collector()
    with ExitStack() as stack:
        systems = {
            name: stack.enter_context(
                rdev_system(RDEV_EXECUTOR_CONCURRENCY=args.concurrency, **settings)
            )
            for name, settings in configurations(collector).items()
        }
        report.header()
        totals, cpu = interleaved(systems, args.runs)
    collector.close()
    base = latency_summary(totals["off"])
    base_cpu = cpu["off"] / args.runs * 1000
    for name, seconds in totals.items():
        s = latency_summary(seconds)
        delta = "" if name == "off" else f"{s['p50_ms'] - base['p50_ms']:+.2f} ms p50 vs off"
        report.add(f"tracing {name}", f"p50 (n={s['runs']})", s["p50_ms"], "ms", delta)
        report.add(f"tracing {name}", "p99", s["p99_ms"], "ms")
        report.add(f"tracing {name}", "p90 / max", f"{s['p90_ms']:.1f} / {s['max_ms']:.1f}", "ms")
        per_command = cpu[name] / args.runs * 1000
        extra = "" if name == "off" else f"{per_command - base_cpu:+.2f} ms vs off"
        report.add(f"tracing {name}", "service CPU / command", per_command, "ms", extra)
    report.add("collector", "OTLP posts / bytes", f"{collector.requests} / {collector.bytes}", "")
    report.note(
        "same machine, same moment: runs alternate off → recorded → exported; "
        "the difference of the percentiles is the cost of tracing"
    )
    report.save()


if __name__ == "__main__":
    main()
