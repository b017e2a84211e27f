"""The projection survives its service being SIGKILLed mid-stream: no duplicate, no missing row."""

from __future__ import annotations

from pathlib import Path

import pytest

from rdev_common.streams import ADMIN, LIFECYCLE
from tests.audit.support import (
    AuditProcess,
    Db,
    admin_event,
    publish_all,
    publish_runs,
    stream_last_seq,
    verify_db,
    wait_stream_count,
)
from tests.support import wait_for

COMMANDS = 1000  # 3,000 lifecycle events
KILLS = 3

pytestmark = pytest.mark.timeout(900)


async def test_sigkill_mid_stream_neither_duplicates_nor_skips(
    js, audit_env: dict[str, str], db: Db, tmp_path: Path
) -> None:
    keys = [
        admin_event(
            "api_key", "created", f"key-{i}", "admin", {"id": f"key-{i}", "name": f"bot {i}"}
        )
        for i in range(50)
    ]
    await publish_all(js, keys)
    ids = await publish_runs(js, "crashy", COMMANDS, actor="key-1")
    total = COMMANDS * 3
    await wait_stream_count(js, LIFECYCLE, total)
    assert await stream_last_seq(js, LIFECYCLE) == total

    # Small batches: many transactions, so a kill lands between write and ack.
    service = AuditProcess({**audit_env, "RDEV_BATCH_SIZE": "25"}, tmp_path / "audit.log")
    service.start()
    try:
        for k in range(1, KILLS + 1):
            threshold = total * k // (KILLS + 1)
            wait_for(
                lambda t=threshold: db.position(LIFECYCLE) >= t,
                120,
                f"projection to pass {threshold}: {service.log_tail()}",
                interval=0.01,
            )
            service.kill()
            killed_at = db.position(LIFECYCLE)
            assert killed_at < total, "the kill must land mid-stream"
            service.start()
        wait_for(
            lambda: db.position(LIFECYCLE) == total and db.position(ADMIN) == 50,
            180,
            f"projection to finish: {service.log_tail()}",
        )
    finally:
        service.stop()

    seqs = [
        r[0]
        for r in db.rows("SELECT seq FROM audit_log WHERE stream = :s ORDER BY seq", s=LIFECYCLE)
    ]
    assert seqs == list(range(1, total + 1)), "every lifecycle event exactly once"
    assert db.scalar("SELECT count(*) FROM audit_log WHERE stream = :s", s=ADMIN) == 50
    history = db.rows("SELECT id, status FROM command_history")
    assert sorted(h[0] for h in history) == sorted(ids)
    assert {h[1] for h in history} == {"completed"}
    names = db.scalar("SELECT count(*) FROM audit_actors")
    assert names == 50
    result = await verify_db(audit_env["RDEV_DATABASE_URL"])
    assert result.broken is None, result.broken
    assert result.checked == total + 50
