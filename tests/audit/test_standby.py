"""A second audit replica is a standby: it waits for the writer lock, projects nothing
while the first one lives, and takes over when the first is SIGKILLed (or, on
PostgreSQL, loses its database session). Each row once, the chain verifies."""

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
    verify_db,
    wait_caught_up,
)
from tests.support import wait_for

pytestmark = pytest.mark.timeout(600)

WRITING = "audit writer: projecting"
STANDBY = "audit standby: another audit instance holds the writer lock"
FIGHTING = "projection re-positioning"
POSITIONED = "consumer positioned"  # a projection loop (re)started reading


def logged(service: AuditProcess, text: str) -> bool:
    return text in service.log_path.read_text(errors="replace")


async def test_second_replica_waits_then_takes_over(
    js, audit_env: dict[str, str], db: Db, tmp_path: Path
) -> None:
    env = {**audit_env, "RDEV_STANDBY_POLL_S": "0.2", "RDEV_WRITER_CHECK_S": "0.5"}
    first = AuditProcess(env, tmp_path / "first.log")
    second = AuditProcess(env, tmp_path / "second.log")
    first.start()
    try:
        wait_for(lambda: logged(first, POSITIONED), 60, f"first never read: {first.log_tail()}")
        second.start()
        wait_for(
            lambda: logged(second, STANDBY) or logged(second, POSITIONED),
            60,
            f"second neither waits nor reads: {second.log_tail()}",
        )
        assert not logged(second, POSITIONED), "a second replica projects beside the first"
        await publish_all(
            js, [admin_event("project", "created", f"p{i}", "admin", {}) for i in range(20)]
        )
        ids = await publish_runs(js, "standby", 150, actor="k1")
        await wait_caught_up(js, db, (LIFECYCLE, ADMIN), first)
        assert not logged(second, POSITIONED), "the standby projected while the writer lived"
        assert not logged(first, FIGHTING), first.log_tail()

        first.kill()
        ids += await publish_runs(js, "standby", 150, actor="k1")
        wait_for(lambda: logged(second, WRITING), 60, f"no take-over: {second.log_tail()}")
        await wait_caught_up(js, db, (LIFECYCLE, ADMIN), second)
        assert second.alive()
    finally:
        first.stop()
        second.stop()

    total = 300 * 3
    seqs = [
        r[0]
        for r in db.rows("SELECT seq FROM audit_log WHERE stream = :s ORDER BY seq", s=LIFECYCLE)
    ]
    assert seqs == list(range(1, total + 1)), "every lifecycle event exactly once"
    history = db.rows("SELECT id FROM command_history")
    assert sorted(h[0] for h in history) == sorted(ids)
    result = await verify_db(audit_env["RDEV_DATABASE_URL"])
    assert result.broken is None, result.broken
    assert result.checked == total + 20


# Only PostgreSQL: a SQLite file lock has no session to lose.
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_writer_that_loses_its_session_steps_down(
    js, audit_env: dict[str, str], db: Db, db_url: str, tmp_path: Path
) -> None:
    """PostgreSQL ends the writer's lock session: it stops projecting and waits; the
    standby takes over, and the old writer becomes the standby."""
    env = {**audit_env, "RDEV_STANDBY_POLL_S": "0.2", "RDEV_WRITER_CHECK_S": "0.5"}
    first = AuditProcess(env, tmp_path / "first.log")
    second = AuditProcess(env, tmp_path / "second.log")
    first.start()
    try:
        wait_for(lambda: logged(first, WRITING), 60, f"first never wrote: {first.log_tail()}")
        second.start()
        wait_for(lambda: logged(second, STANDBY), 60, f"no standby: {second.log_tail()}")
        ended = db.scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_locks"
            " WHERE locktype = 'advisory' AND granted AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        assert ended == 1, "one session holds the writer lock"
        wait_for(lambda: logged(second, WRITING), 60, f"no take-over: {second.log_tail()}")
        wait_for(lambda: logged(first, STANDBY), 60, f"first still writes: {first.log_tail()}")
        ids = await publish_runs(js, "standby", 50, actor="k1")
        await wait_caught_up(js, db, (LIFECYCLE,), second)
        assert first.alive() and second.alive()
    finally:
        first.stop()
        second.stop()
    assert db.scalar("SELECT count(*) FROM audit_log WHERE stream = :s", s=LIFECYCLE) == 150
    assert sorted(r[0] for r in db.rows("SELECT id FROM command_history")) == sorted(ids)
    result = await verify_db(audit_env["RDEV_DATABASE_URL"])
    assert result.broken is None, result.broken
