"""Several replicas of every service at once, on the 3-node NATS cluster (R3 streams) and a
private PostgreSQL: two apis (the client alternates), two executors, two webhooks
services, the audit writer and its standby. A burst of commands with a webhook
registered and SSE clients on either api; mid-burst one replica of each kind is
SIGKILLed (the audit writer too: its standby takes over).

Every command completes exactly once, each run's output is whole and agrees between SSE
and /output, every lifecycle event reaches the webhook (at least once), the audit log
holds each lifecycle event once and its chain verifies, and the project's concurrency
limit holds across both executors."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from rdev_common.broker import free_port
from rdev_common.db.audit_queries import verify_chain
from rdev_common.db.engine import create_engine, session_factory, sync_url
from rdev_common.db.migrate import upgrade
from rdev_common.sealing import generate_key
from tests.cluster.nats_cluster import NatsCluster
from tests.cluster.private_postgres import private_postgres
from tests.cluster.services import Service
from tests.cluster.support import SseFollower, replicated, stream_info, subject_counts
from tests.support import BIN, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

PROJECT = "burst"
LIMIT = 2  # the project's max_concurrency
COMMANDS = 40
KILL_AFTER = 12  # commands completed before one replica of each kind is killed
BURST = 20  # then submitted at once; one replica of each kind is killed while they run
# Each run prints when it starts and ends (nanoseconds), so the test can see which ran at once.
COMMAND = 'echo "B $(date +%s%N)"; sleep 2; echo "E $(date +%s%N)"'
ADMIN_KEY = "rdev_replicas_admin_0123456789abcdef"
STREAMS = ("RDEV_COMMANDS", "RDEV_RUNS", "RDEV_LIFECYCLE", "RDEV_ADMIN", "RDEV_WEBHOOKS")


@dataclass
class Receiver:
    """A webhook endpoint that records every delivery and answers 204."""

    port: int = field(default_factory=free_port)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        received = self.deliveries

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append({"id": self.headers["webhook-id"], "event": json.loads(body)})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()


@dataclass
class Replicas:
    apis: list[Service]
    executors: list[Service]
    webhooks: list[Service]
    audits: list[Service]
    database_url: str
    nats_url: str
    _turn: Iterator[int] = field(default_factory=itertools.count)
    _clients: dict[str, httpx.Client] = field(default_factory=dict)

    def all(self) -> list[Service]:
        return [*self.audits, *self.webhooks, *self.executors, *self.apis]

    def api_url(self) -> str:
        """The next live api, alternating: what a client behind a load balancer sees."""
        live = [a for a in self.apis if a.alive()]
        return live[next(self._turn) % len(live)].url

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A request to the next api; a connection refused by a dead one goes to the other."""
        for _ in range(2 * len(self.apis)):
            url = self.api_url()
            client = self._clients.get(url)
            if client is None:
                client = self._clients[url] = httpx.Client(
                    base_url=url, headers={"X-API-Key": ADMIN_KEY}, timeout=60
                )
            try:
                return client.request(method, path, **kwargs)
            except httpx.TransportError:  # refused by a dead api, or cut by its death
                continue
        raise AssertionError(f"no api answered {method} {path}")


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def replicas(cluster: NatsCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    logs = tmp_path_factory.mktemp("replicas")
    with private_postgres() as database_url:
        upgrade(database_url)
        env = {
            "PATH": f"{BIN}:/usr/bin:/bin",
            "RDEV_NATS_URL": cluster.url,
            "RDEV_STREAM_REPLICAS": "3",
            "RDEV_DATABASE_URL": database_url,
            "RDEV_DATA_DIR": str(logs),
            "RDEV_BOOTSTRAP_KEY": ADMIN_KEY,
            "RDEV_SECRETS_KEY": generate_key(),
            "RDEV_EXECUTOR_CONCURRENCY": "4",
            "RDEV_EXECUTOR_ACK_WAIT_S": "6",
            "RDEV_KILL_GRACE_S": "2",
            "RDEV_HEARTBEAT_S": "2",
            "RDEV_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true",
            "RDEV_WEBHOOKS_RETRY_SCHEDULE": "1,1,2,2,5",
            "RDEV_STANDBY_POLL_S": "0.5",
            "RDEV_RATE_LIMIT_REQUESTS": "1000000",
            "RDEV_RATE_LIMIT_SUBMIT": "1000000",
            "PYTHONUNBUFFERED": "1",
        }

        def make(kind: str, n: int) -> list[Service]:
            return [Service(kind, env, logs / f"{kind}-{i}.log") for i in range(1, n + 1)]

        system = Replicas(
            make("api", 2), make("executor", 2), make("webhooks", 2), make("audit", 2),
            database_url, cluster.url,
        )  # fmt: skip
        try:
            # The first api creates the admin key before the second looks for it.
            for service in system.all():
                service.start()
                if service is system.apis[0] or service is system.audits[0]:
                    service.wait_ready()
            for service in system.all():
                service.wait_ready()
            yield system
        finally:
            for service in system.all():
                service.stop()


def submit(system: Replicas) -> str:
    r = system.request("POST", f"/projects/{PROJECT}/shell", json={"command": COMMAND})
    assert r.status_code == 202, r.text
    return str(r.json()["data"]["id"])


def state(system: Replicas, command_id: str) -> dict[str, Any] | None:
    r = system.request("GET", f"/commands/{command_id}")
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()["data"]
    return data if data.get("reason") is not None else None


def running(system: Replicas, command_id: str) -> bool:
    r = system.request("GET", f"/commands/{command_id}")
    data = r.json()["data"]
    return data.get("started_at") is not None and data.get("reason") is None


def output(system: Replicas, command_id: str) -> list[str]:
    r = system.request("GET", f"/commands/{command_id}/output")
    assert r.status_code == 200, r.text
    return r.text.splitlines()


def most_at_once(intervals: list[tuple[int, int]]) -> int:
    edges = sorted([(b, 1) for b, _ in intervals] + [(e, -1) for _, e in intervals])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def audit_lifecycle_seqs(database_url: str) -> list[int]:
    engine = sa.create_engine(sync_url(database_url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT seq FROM audit_log WHERE stream = 'RDEV_LIFECYCLE' ORDER BY seq")
            )
            return [r[0] for r in rows]
    finally:
        engine.dispose()


async def verify(database_url: str) -> Any:
    engine = create_engine(database_url)
    try:
        return await verify_chain(session_factory(engine))
    finally:
        await engine.dispose()


def test_a_burst_survives_one_replica_of_each_kind_killed(
    replicas: Replicas, receiver: Receiver, cluster: NatsCluster, tmp_path: Path
) -> None:
    system = replicas
    wait_for(lambda: replicated(cluster.url, STREAMS), 60, "streams not R3 and current")
    workdir = tmp_path / PROJECT
    workdir.mkdir()
    r = system.request(
        "POST",
        "/projects",
        json={"id": PROJECT, "workdir": str(workdir), "max_concurrency": LIMIT},
    )
    assert r.status_code == 201, r.text
    r = system.request(
        "POST",
        f"/projects/{PROJECT}/webhooks",
        json={"url": f"http://127.0.0.1:{receiver.port}/hook", "events": ["command.*"]},
    )
    assert r.status_code == 201, r.text

    headers = {"X-API-Key": ADMIN_KEY}
    ids: list[str] = []
    followers: list[SseFollower] = []

    def burst(count: int) -> None:
        for _ in range(count):
            ids.append(submit(system))
            if len(ids) % 3 == 1:  # an SSE client on whichever api comes next
                followers.append(SseFollower(system.api_url, headers, PROJECT, ids[-1]).start())

    burst(KILL_AFTER)
    wait_for(lambda: all(state(system, c) is not None for c in ids), 120, "first commands not done")
    burst(BURST)  # queued behind the project's limit: runs are in progress for a while
    wait_for(lambda: any(running(system, c) for c in reversed(ids)), 60, "nothing running", 0.01)
    for kind in (system.apis, system.executors, system.webhooks, system.audits):
        kind[0].kill()
    burst(COMMANDS - KILL_AFTER - BURST)

    ends = {c: wait_for(lambda c=c: state(system, c), 240, f"{c} never ended") for c in ids}
    completed = subject_counts(cluster.url, "RDEV_RUNS", f"rdev.runs.{PROJECT}.*.completed")
    assert [completed.get(f"rdev.runs.{PROJECT}.{c}.completed") for c in ids] == [1] * len(ids)
    reasons = Counter(e["reason"] for e in ends.values())
    print(f"reasons: {dict(reasons)}")
    assert set(reasons) <= {"exited", "lost"}, reasons
    assert reasons["lost"] <= LIMIT, "only the killed executor's runs may be lost"

    intervals = []
    for c in ids:
        lines = output(system, c)
        if ends[c]["reason"] == "exited":
            assert [ln.split()[0] for ln in lines] == ["B", "E"], (c, lines)
            intervals.append((int(lines[0].split()[1]), int(lines[1].split()[1])))
    assert most_at_once(intervals) <= LIMIT, "the project's limit held across executors"

    for follower in followers:
        follower.join(180)
        assert follower.lines == output(system, follower.command_id), "SSE and /output agree"
        assert follower.complete is not None
        assert follower.complete["exit_code"] == ends[follower.command_id]["exit_code"]

    wanted = {(c, kind) for c in ids for kind in ("requested", "started", "completed")}

    def delivered() -> set[tuple[str, str]]:
        seen = {(d["event"]["subject"], d["event"]["type"]) for d in receiver.deliveries}
        return {(c, t.split(".")[-2]) for c, t in seen}

    wait_for(lambda: wanted <= delivered(), 180, f"undelivered: {wanted - delivered()}")
    duplicates = sum(n - 1 for n in Counter(d["id"] for d in receiver.deliveries).values())
    print(f"webhook deliveries: {len(receiver.deliveries)}, repeated: {duplicates}")

    standby = system.audits[1]
    lifecycle_end = stream_info(cluster.url, "RDEV_LIFECYCLE").state.last_seq
    wait_for(
        lambda: audit_lifecycle_seqs(system.database_url)[-1:] == [lifecycle_end],
        180,
        f"the audit standby did not take over: {standby.log_tail()}",
    )
    assert audit_lifecycle_seqs(system.database_url) == list(range(1, lifecycle_end + 1))
    result = asyncio.run(verify(system.database_url))
    assert result.broken is None, result.broken
    survivors = (system.apis[1], system.executors[1], system.webhooks[1], standby)
    assert all(s.alive() for s in survivors), [s.log_path.name for s in survivors]
