"""Growth: do the costs of reading one run stay flat as the store grows?

The same probes on one system, first with an empty store, then after filling it with
`--runs` finished runs (requested, started, one output line, completed) over
`--projects` projects, published directly to JetStream as `bench_replay` does (the
system is stopped for the fill and started again on the same data dir and broker):

- e2e `true`: POST → 202, then the run's SSE until `complete`
- GET /commands/{id} (a command of the probe project, and an old one of the fill)
- GET /projects/{id}/commands: the first page, and a deep cursor (the page after 50)
- SSE connect → first event of an old, finished run
- GET /audit, first page

Each probe: `--samples` sequential requests on one keep-alive client; p50 / p99 wall
time, and the CPU (user + system from /proc) the api and nats-server spent per request,
which a loaded machine disturbs far less than wall time. Ratio = filled / empty.

    .venv/bin/python -m bench.bench_growth [--runs 1000000] [--projects 10000] [--samples 50]
    .venv/bin/python -m bench.bench_growth --quick     # 50,000 runs over 500 projects

Before the second start, the executors' and webhooks' durable consumers are moved past
the filled events (acknowledged in bulk), as after a long steady state; the audit
service projects every filled lifecycle event itself, and the probes wait for it.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import uuid6

from bench.common import Report, System, cpu_seconds, percentile, rdev_system
from rdev_common import subjects
from rdev_common.broker import EmbeddedNats, connect
from rdev_common.events import (
    CloudEvent,
    CommandCompleted,
    CommandRequested,
    CommandStarted,
    OutputBatch,
    Priority,
    Reason,
)
from rdev_common.settings import CommonSettings
from rdev_common.streams import (
    COMMANDS,
    LIFECYCLE,
    RUNS,
    ensure_streams,
    executor_consumer,
    lifecycle_consumer,
)

Message = tuple[str, bytes, dict[str, str] | None]
PROBE = "growth-probe"
WINDOW = 4000
CID = "00000000-0000-7000-8000-000000000000"  # replaced in the templates
PROJ = "project-placeholder-xx"


def _templates() -> dict[str, bytes]:
    """One event of each kind as the services write it, with placeholders for ids."""
    requested = CommandRequested(
        command_id=CID, project=PROJ, command="make test", actor="bench", workdir="/srv/x"
    )
    started = CommandStarted(command_id=CID, project=PROJ, executor="bench-executor")
    completed = CommandCompleted(
        command_id=CID, project=PROJ, exit_code=0, reason=Reason.EXITED, duration_ms=812, lines=1
    )
    out = {}
    for name, payload, source in (
        ("requested", requested, "rdev/api"),
        ("started", started, "rdev/executor"),
        ("completed", completed, "rdev/executor"),
    ):
        event = CloudEvent.wrap(payload, source=source, subject=CID, project=PROJ, actor="bench")
        out[name] = event.model_copy(update={"id": CID.replace("7000", "7001")}).to_bytes()
    return out


def _fill_ids(runs: int, projects: int) -> Iterator[tuple[str, str]]:
    for i in range(runs):
        yield f"g{i % projects:05d}", str(uuid6.uuid7())


async def _publish(js: Any, messages: Iterable[Message], label: str, total: int) -> None:
    futures = []
    done = 0
    for subject, payload, headers in messages:
        futures.append(await js.publish_async(subject, payload, headers=headers))
        if len(futures) >= WINDOW:
            await asyncio.gather(*futures)
            done += len(futures)
            futures = []
            if done % 200_000 < WINDOW:
                print(f"  fill {label}: {done:,}/{total:,}", file=sys.stderr, flush=True)
    await asyncio.gather(*futures)


async def _drain(js: Any, stream: str, durable: str, subject: str) -> int:
    """Acknowledge everything the durable has outstanding, as a consumer in steady state."""
    sub = await js.pull_subscribe(subject, durable=durable, stream=stream)
    acked = 0
    while True:
        info = await js.consumer_info(stream, durable)
        if info.num_pending == 0 and info.num_ack_pending == 0:
            break
        # A fetch waits for its whole batch: never ask beyond what may be outstanding.
        batch = min(5000, info.config.max_ack_pending or 1000, info.num_pending or 1)
        try:
            msgs = await sub.fetch(batch, timeout=2)
        except Exception:
            continue
        for msg in msgs:
            await msg.ack()
        acked += len(msgs)
    await sub.unsubscribe()
    return acked


async def fill(url: str, runs: int, projects: int) -> tuple[list[tuple[str, str]], float]:
    """Publish `runs` finished runs while the system is stopped (its broker stays up);
    returns a few old (project, command id) pairs and the seconds the fill took."""
    t0 = time.monotonic()
    nc = await connect(url, "bench-growth-fill")
    js = nc.jetstream(publish_async_max_pending=WINDOW * 2)
    await ensure_streams(js, CommonSettings())
    for priority in Priority:
        await js.add_consumer(COMMANDS, executor_consumer(priority, 30.0).config)
    await js.add_consumer(LIFECYCLE, lifecycle_consumer("webhooks").config)
    t = _templates()
    ids = list(_fill_ids(runs, projects))
    old = ids[: 2 * projects : max(1, projects // 5)][:10]
    cid_b, proj_b = CID.encode(), PROJ.encode()

    def event(kind: str, project: str, cid: str) -> bytes:
        return t[kind].replace(cid_b, cid.encode()).replace(proj_b, project.encode())

    before = (await js.stream_info(RUNS)).state.messages
    await _publish(
        js,
        ((subjects.command(Priority.NORMAL, p, c), event("requested", p, c), None) for p, c in ids),
        "requested",
        runs,
    )
    # Sourced into RDEV_RUNS before the run's own events, as in a real run.
    while (await js.stream_info(RUNS)).state.messages < before + runs:
        await asyncio.sleep(0.5)

    def run_events() -> Iterator[Message]:
        for n, (p, c) in enumerate(ids):
            yield subjects.run_event(p, c, "started"), event("started", p, c), None
            headers, payload = OutputBatch(
                command_id=c, stream="stdout", first_line=1, text=f"ok {n}\n".encode()
            ).message(source="rdev/executor", project=p)
            yield subjects.run_event(p, c, "output"), payload, headers
            yield subjects.run_event(p, c, "completed"), event("completed", p, c), None

    await _publish(js, run_events(), "runs", runs * 3)
    lifecycle_total = 3 * runs
    while (await js.stream_info(LIFECYCLE)).state.messages < lifecycle_total:
        await asyncio.sleep(0.5)
    for priority in Priority:
        durable = executor_consumer(priority, 30.0).durable
        await _drain(js, COMMANDS, durable, subjects.commands_of_priority(priority))
    await _drain(js, LIFECYCLE, "webhooks-runs", ">")
    await nc.close()
    return old, time.monotonic() - t0


def probe(
    system: System, client: httpx.Client, samples: int, once: Callable[[], object]
) -> dict[str, float]:
    api, nats = system.service_pid("api"), system.service_pid("nats-server")
    once()  # warm
    c0 = cpu_seconds(api), cpu_seconds(nats)
    took = []
    for _ in range(samples):
        t0 = time.perf_counter()
        once()
        took.append(time.perf_counter() - t0)
    ms = [s * 1000 for s in took]
    return {
        "p50": percentile(ms, 50),
        "p99": percentile(ms, 99),
        "api_cpu_ms": (cpu_seconds(api) - c0[0]) * 1000 / samples,
        "nats_cpu_ms": (cpu_seconds(nats) - c0[1]) * 1000 / samples,
    }


def _ok(r: httpx.Response) -> httpx.Response:
    if r.status_code >= 300:
        raise RuntimeError(f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:300]}")
    return r


def run_true(client: httpx.Client, project: str) -> str:
    r = _ok(client.post(f"/projects/{project}/shell", json={"command": "true"}))
    cid = str(r.json()["data"]["id"])
    first_event_of(client, project, cid, until=b"event: complete")
    return cid


def first_event_of(client: httpx.Client, project: str, cid: str, until: bytes = b"id:") -> None:
    seen = b""
    with client.stream("GET", f"/projects/{project}/events", params={"stream_id": cid}) as resp:
        _ok(resp)
        for chunk in resp.iter_raw():
            seen += chunk
            if until in seen:
                return  # closing the response here ends the stream
    raise RuntimeError(f"no {until!r} in the events of {cid}")


def probes(
    system: System, samples: int, old: tuple[str, str] | None, deep_project: str
) -> dict[str, dict[str, float]]:
    """Every probe; `old` is a run of the fill (None: the probe project's first run)."""
    out = {}
    with system.client() as c:
        probe_cids = [run_true(c, PROBE) for _ in range(2)]
        if old is None:
            listed = _ok(c.get(f"/projects/{PROBE}/commands", params={"limit": 500})).json()
            old = (PROBE, listed["data"][-1]["id"])
        out["e2e true (POST, SSE complete)"] = probe(system, c, samples, lambda: run_true(c, PROBE))
        out["GET /commands/{id}, probe run"] = probe(
            system, c, samples, lambda: _ok(c.get(f"/commands/{probe_cids[0]}"))
        )
        out["GET /commands/{id}, oldest run"] = probe(
            system, c, samples, lambda: _ok(c.get(f"/commands/{old[1]}"))
        )
        out["GET /projects/{id}/commands p1"] = probe(
            system, c, samples, lambda: _ok(c.get(f"/projects/{deep_project}/commands"))
        )
        first = _ok(c.get(f"/projects/{deep_project}/commands")).json()
        cursor = first["next_cursor"]
        if cursor is None:
            raise RuntimeError(f"{deep_project} has no second page")
        out["GET …/commands deep cursor"] = probe(
            system,
            c,
            samples,
            lambda: _ok(c.get(f"/projects/{deep_project}/commands", params={"cursor": cursor})),
        )
        out["SSE connect → first event, old"] = probe(
            system, c, samples, lambda: first_event_of(c, old[0], old[1])
        )
        out["GET /audit first page"] = probe(system, c, samples, lambda: _ok(c.get("/audit")))
    return out


def wait_audit(system: System, target: int, timeout: float) -> None:
    """Until the audit trail holds `target` entries or more (its newest id)."""
    deadline = time.monotonic() + timeout
    with system.client() as c:
        while time.monotonic() < deadline:
            rows = _ok(c.get("/audit", params={"limit": 1})).json()["data"]
            if rows and int(rows[0].get("id", 0)) >= target:
                return
            time.sleep(2)
    raise RuntimeError(f"audit trail not at {target} entries after {timeout}s")


def main(args: argparse.Namespace) -> int:
    report = Report("growth", "growth: reading one run, empty store vs filled store")
    report.header()
    data_dir = Path(tempfile.mkdtemp(prefix="rdev-bench-growth-"))
    # One broker for both phases: the system is stopped for the fill, the broker is not
    # (a broker recovering a large store can take longer to listen than `rdev up` waits).
    broker = EmbeddedNats(data_dir / "broker")
    broker.start()
    try:
        with rdev_system(data_dir, RDEV_NATS_URL=broker.url) as system:
            system.create_project(PROBE)
            with system.client() as c:
                for _ in range(60):  # a second page for the deep cursor
                    run_true(c, PROBE)
            empty = probes(system, args.samples, None, PROBE)
        old, took = asyncio.run(fill(broker.url, args.runs, args.projects))
        report.note(f"filled {args.runs:,} runs over {args.projects:,} projects in {took:.0f}s")
        with rdev_system(data_dir, RDEV_NATS_URL=broker.url) as system:
            t0 = time.monotonic()
            wait_audit(system, 3 * args.runs, timeout=args.audit_timeout)
            report.note(f"audit caught up {time.monotonic() - t0:.0f}s after start")
            project_of_old = old[0][0]
            system.create_project(project_of_old)
            filled = probes(system, args.samples, old[0], PROBE)
        for name, before in empty.items():
            after = filled[name]
            for key in ("p50", "p99", "api_cpu_ms", "nats_cpu_ms"):
                ratio = after[key] / before[key] if before[key] else float("nan")
                report.add(name, key, after[key], "ms", f"empty {before[key]:.2f}, x{ratio:.2f}")
    finally:
        broker.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    report.save()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--projects", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--audit-timeout", type=float, default=3600)
    parser.add_argument("--quick", action="store_true", help="50,000 runs over 500 projects")
    ns = parser.parse_args()
    if ns.quick:
        ns.runs, ns.projects, ns.samples = 50_000, 500, 30
    sys.exit(main(ns))
