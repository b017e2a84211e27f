"""Added latency of authentication + rate limiting per request, and the cost of the
shared rate-limit counter on each store that could hold it.

    python -m bench.bench_auth [--requests 2000]

1. A private system (`rdev up`, rate limiting on): GET /projects/{id} with a key
   (authentication from the identity cache, one JetStream counter increment, project
   look-up) against GET /healthz (no authentication), interleaved, sequential,
   keep-alive. The difference of the percentiles is what identity costs a request.
2. One counter increment, in-process, N times: JetStream counter (`Nats-Incr`, what
   rdev uses), and the SQL alternative (an upsert in its own transaction) on SQLite
   and, when it answers, PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import Report, latency_summary, rdev_system

UPSERT = (
    "INSERT INTO counters (name, n) VALUES (:name, 1) "
    "ON CONFLICT (name) DO UPDATE SET n = counters.n + 1 RETURNING n"
)


def http_latencies(base_url: str, key: str, project: str, n: int) -> dict[str, list[float]]:
    paths = {
        "healthz (no auth)": ("/healthz", {}),
        "authenticated + rate-limited": (f"/projects/{project}", {"X-API-Key": key}),
    }
    samples: dict[str, list[float]] = {name: [] for name in paths}
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for _ in range(50):  # warm caches and connections
            for path, headers in paths.values():
                client.get(path, headers=headers)
        for _ in range(n):
            for name, (path, headers) in paths.items():
                start = time.perf_counter()
                response = client.get(path, headers=headers)
                samples[name].append(time.perf_counter() - start)
                if response.status_code != 200:
                    raise RuntimeError(f"{path}: {response.status_code} {response.text}")
                if path != "/healthz" and "ratelimit" not in response.headers:
                    raise RuntimeError("rate limiting is not on")
    return samples


async def nats_counter(nats_url: str, n: int, data_dir: Path) -> list[float]:
    from rdev_api.adapters.nats_rate_limiter import NatsRateLimiter
    from rdev_api.domain.ratelimit import RateLimitPolicy
    from rdev_common.broker import connect

    # The counters are the api's: log in as it (rdev up's broker takes known users only).
    password = json.loads((data_dir / "nats-credentials.json").read_text())["api"]
    nc = await connect(nats_url, "bench", user="api", password=password)
    limiter = NatsRateLimiter(nc, nc.jetstream())
    policy = RateLimitPolicy("requests", 10**9, 3600)
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        await limiter.hit("bench", policy)
        samples.append(time.perf_counter() - start)
    await nc.close()
    return samples


async def sql_counter(url: str, n: int) -> list[float]:
    from sqlalchemy import text

    from rdev_common.db.engine import create_engine

    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE IF EXISTS counters"))
        await conn.execute(text("CREATE TABLE counters (name VARCHAR(200) PRIMARY KEY, n INTEGER)"))
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        async with engine.begin() as conn:
            await conn.execute(text(UPSERT), {"name": "bench"})
        samples.append(time.perf_counter() - start)
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE counters"))
    await engine.dispose()
    return samples


async def authenticate_in_process(n: int, cached: bool) -> list[float]:
    """`auth.authenticate` alone on SQLite: through the identity cache, or the database."""
    from datetime import UTC, datetime

    from rdev_api.adapters.cached_identity import CachedUnitOfWork, IdentityCache
    from rdev_api.adapters.sqlalchemy_repositories import SqlAlchemyUnitOfWork
    from rdev_api.service_layer import auth
    from rdev_common.db.engine import create_engine, session_factory
    from rdev_common.db.migrate import upgrade

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/auth.db"
        upgrade(url)
        engine = create_engine(url)
        sessions, cache = session_factory(engine), IdentityCache()

        def uow() -> object:
            inner = SqlAlchemyUnitOfWork(sessions)
            return CachedUnitOfWork(inner, cache) if cached else inner

        secret = "rdev_bench_in_process"
        await auth.ensure_bootstrap_key(uow(), secret, datetime.now(UTC))  # type: ignore[arg-type]
        samples = []
        for _ in range(n):
            start = time.perf_counter()
            await auth.authenticate(
                uow(),  # type: ignore[arg-type]
                secret=secret,
                session_token=None,
                client_ip="127.0.0.1",
                now=datetime.now(UTC),
            )
            samples.append(time.perf_counter() - start)
        await engine.dispose()
    return samples


def postgres_url() -> str | None:
    from tests.conftest import POSTGRES_ADMIN_URL, postgres_available

    return POSTGRES_ADMIN_URL if postgres_available() else None


def embedded_nats_url(data_dir: Path) -> str:
    found = re.search(r"nats://127\.0\.0\.1:\d+", (data_dir / "rdev-up.log").read_text())
    if not found:
        raise RuntimeError("the embedded nats-server URL is not in the rdev up log")
    return found.group(0)


def report_latencies(report: Report, samples: dict[str, list[float]]) -> None:
    summaries = {name: latency_summary(values) for name, values in samples.items()}
    for name, s in summaries.items():
        report.add(name, "p50", s["p50_ms"], "ms", f"{s['runs']} requests")
        report.add(name, "p99", s["p99_ms"], "ms")
    base, authed = summaries["healthz (no auth)"], summaries["authenticated + rate-limited"]
    report.add("added by auth + rate limit", "p50", authed["p50_ms"] - base["p50_ms"], "ms")
    report.add("added by auth + rate limit", "p99", authed["p99_ms"] - base["p99_ms"], "ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--increments", type=int, default=2000)
    args = parser.parse_args()
    report = Report("auth", "authentication + rate limiting: added latency per request")
    report.header()
    with rdev_system(
        RDEV_RATE_LIMIT_ENABLED="true", RDEV_RATE_LIMIT_REQUESTS="100000000"
    ) as system:
        system.create_project("bench-auth")
        samples = http_latencies(system.base_url, system.api_key, "bench-auth", args.requests)
        report_latencies(report, samples)
        url = embedded_nats_url(system.data_dir)
        nats = asyncio.run(nats_counter(url, args.increments, system.data_dir))
    for cached in (True, False):
        s = latency_summary(asyncio.run(authenticate_in_process(args.increments, cached)))
        label = "authenticate(): " + ("identity cache" if cached else "SQLite, no cache")
        report.add(label, "p50", s["p50_ms"], "ms", "in-process")
        report.add(label, "p99", s["p99_ms"], "ms")
    s = latency_summary(nats)
    report.add("counter: JetStream Nats-Incr", "p50", s["p50_ms"], "ms", "what rdev uses")
    report.add("counter: JetStream Nats-Incr", "p99", s["p99_ms"], "ms")
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = asyncio.run(sql_counter(f"sqlite+aiosqlite:///{tmp}/c.db", args.increments))
    s = latency_summary(sqlite)
    report.add("counter: SQLite upsert (WAL)", "p50", s["p50_ms"], "ms", "one writer at a time")
    report.add("counter: SQLite upsert (WAL)", "p99", s["p99_ms"], "ms")
    pg = postgres_url()
    if pg:
        s = latency_summary(asyncio.run(sql_counter(pg, args.increments)))
        report.add("counter: PostgreSQL upsert", "p50", s["p50_ms"], "ms", "a row lock per key")
        report.add("counter: PostgreSQL upsert", "p99", s["p99_ms"], "ms")
    else:
        report.note("PostgreSQL not reachable on 127.0.0.1:5432: its counter was not measured")
    report.save()


if __name__ == "__main__":
    main()
