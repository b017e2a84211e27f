"""GET /audit, /audit/export and /audit/verify on the real api process; export memory stays flat."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from rdev_common.audit import GENESIS, AuditContent, canonical_json, chain_hash
from rdev_common.broker import EmbeddedNats, free_port
from rdev_common.db.engine import sync_url
from tests.audit.support import Db, env_for
from tests.support import wait_for

pytestmark = pytest.mark.timeout(900)
ROWS = 100_000
MIB = 1024 * 1024
NOTE = 'quote " and, comma'


def fill_audit_log(url: str, count: int) -> None:
    """`count` chained rows, as the audit service would have written them."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    engine = sa.create_engine(sync_url(url))
    table = sa.Table("audit_log", sa.MetaData(), autoload_with=engine)
    prev, batch = GENESIS, []
    with engine.begin() as conn:
        for seq in range(1, count + 1):
            content = AuditContent(
                stream="RDEV_LIFECYCLE", seq=seq, event_id=f"evt-{seq:08d}",
                time=start + timedelta(seconds=seq), actor="key-ci" if seq % 2 else "key-ops",
                client_ip="10.0.0.7", project=f"project-{seq % 7}",
                action="command.completed" if seq % 3 == 0 else "command.requested",
                target=f"cmd-{seq:08d}", outcome="failure" if seq % 5 == 0 else "success",
                details=canonical_json({"command": f"make test-{seq}", "note": NOTE}),
            )  # fmt: skip
            digest = chain_hash(prev, content)
            row = {f: getattr(content, f) for f in content.__dataclass_fields__}
            batch.append({**row, "prev_hash": prev, "hash": digest})
            prev = digest
            if len(batch) == 10_000:
                conn.execute(sa.insert(table), batch)
                batch = []
        conn.execute(
            sa.text("INSERT INTO audit_actors (key_id, name, seq) VALUES ('key-ci', 'ci bot', 1)")
        )
    engine.dispose()


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture
def api(nats_server: EmbeddedNats, db_url: str, tmp_path: Path) -> Iterator[tuple[str, dict, int]]:
    fill_audit_log(db_url, ROWS)
    port, key = free_port(), "rdev_audit_test_" + os.urandom(8).hex()
    env = env_for(nats_server.url, db_url, tmp_path, RDEV_PORT=str(port), RDEV_BOOTSTRAP_KEY=key)
    log = (tmp_path / "api.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "rdev_api"], env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert proc.poll() is None, (tmp_path / "api.log").read_text()[-3000:]
        try:
            return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ready, 180, "api ready", interval=0.2)
    try:
        yield base, {"X-API-Key": key}, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_audit_endpoints_on_100k_rows(api: tuple[str, dict, int], db: Db) -> None:
    """One database of 100,000 rows serves every check: filling it is the slow part."""
    check_export_keeps_memory_flat(api)
    check_pages_filters_and_verify(api, db)


def check_pages_filters_and_verify(api: tuple[str, dict, int], db: Db) -> None:
    base, headers, _ = api
    with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
        assert client.get("/audit").status_code == 200
        assert httpx.get(f"{base}/audit").status_code == 401

        first = client.get("/audit", params={"limit": 3}).json()
        assert [r["seq"] for r in first["data"]] == [ROWS, ROWS - 1, ROWS - 2]
        second = client.get("/audit", params={"limit": 3, "cursor": first["next_cursor"]}).json()
        assert [r["seq"] for r in second["data"]] == [ROWS - 3, ROWS - 4, ROWS - 5]

        params = {"actor": "key-ci", "outcome": "failure", "project": "project-1", "limit": 1000}
        rows = client.get("/audit", params=params).json()["data"]
        assert rows and all(
            r["actor"] == "key-ci" and r["outcome"] == "failure" and r["project"] == "project-1"
            for r in rows
        )
        assert rows[0]["actor_name"] == "ci bot"
        assert rows[0]["details"]["command"].startswith("make test-")

        window = {"since": "2026-01-01T00:00:10Z", "until": "2026-01-01T00:00:20Z", "limit": 100}
        assert sorted(r["seq"] for r in client.get("/audit", params=window).json()["data"]) == list(
            range(10, 20)
        )
        bad = client.get("/audit", params={"cursor": "not-a-cursor"})
        assert bad.status_code == 422 and bad.json()["error"]["code"]

        ok = client.get("/audit/verify").json()["data"]
        assert ok == {"ok": True, "checked": ROWS, "broken": None}
        db.execute("UPDATE audit_log SET target = 'cmd-forged' WHERE seq = 4242")
        broken = client.get("/audit/verify").json()["data"]
        assert not broken["ok"]
        assert broken["broken"]["seq"] == 4242
        assert broken["broken"]["stream"] == "RDEV_LIFECYCLE"


def stream_export(base: str, headers: dict, fmt: str, pid: int) -> tuple[bytes, int, int, int]:
    """The body's tail, total bytes, RSS once streaming started, and peak RSS while streaming."""
    size, baseline, peak, tail = 0, 0, 0, b""
    params = {"format": fmt}
    with httpx.stream(
        "GET", f"{base}/audit/export", params=params, headers=headers, timeout=300
    ) as r:
        assert r.status_code == 200, r.read()
        for chunk in r.iter_bytes():
            size += len(chunk)
            rss = rss_bytes(pid)
            baseline = baseline or rss
            peak = max(peak, rss)
            tail = (tail + chunk)[-(4 * MIB) :]
    return tail, size, baseline, peak


def check_export_keeps_memory_flat(api: tuple[str, dict, int]) -> None:
    base, headers, pid = api
    tail, size, baseline, peak = stream_export(base, headers, "jsonl", pid)
    print(f"jsonl export: {size / MIB:.1f} MiB body, api RSS +{(peak - baseline) / MIB:.1f} MiB")
    lines = tail.decode().splitlines()
    last = json.loads(lines[-1])
    assert last["seq"] == ROWS and last["details"]["note"] == NOTE
    assert size > 30 * MIB, size
    # Holding the rows would cost far more than the body itself; streaming costs a chunk.
    assert peak - baseline < 20 * MIB, f"RSS grew {(peak - baseline) / MIB:.1f} MiB"

    tail, size, baseline, peak = stream_export(base, headers, "csv", pid)
    print(f"csv export: {size / MIB:.1f} MiB body, api RSS +{(peak - baseline) / MIB:.1f} MiB")
    assert peak - baseline < 20 * MIB, f"RSS grew {(peak - baseline) / MIB:.1f} MiB"
    rows = list(csv.reader(io.StringIO(tail.decode().split("\n", 1)[1])))
    assert rows[-1][3] == str(ROWS) and rows[-1][12] == canonical_json(
        {"command": f"make test-{ROWS}", "note": NOTE}
    )
