"""`rdev audit rebuild` while the service runs ends with the same rows and chain;
`rdev audit verify` reports a tampered row at that row."""

from __future__ import annotations

import asyncio

import pytest

from rdev_common.events import CloudEvent
from rdev_common.streams import ADMIN, LIFECYCLE, WEBHOOKS
from tests.audit.support import (
    AuditProcess,
    Db,
    admin_event,
    publish_all,
    publish_runs,
    rdev_cli,
    verify_db,
    wait_caught_up,
)

pytestmark = pytest.mark.timeout(900)
STREAMS = (LIFECYCLE, ADMIN, WEBHOOKS)


def webhook_disabled(webhook_id: str) -> tuple:
    event = CloudEvent(
        source="rdev/webhooks",
        type="dev.rdev.webhook.disabled.v1",
        subject=webhook_id,
        project="alpha",
        data={"webhook_id": webhook_id, "reason": "failing for 3 days"},
    )
    attempt = CloudEvent(
        source="rdev/webhooks",
        type="dev.rdev.webhook.attempted.v1",
        subject=webhook_id,
        data={"webhook_id": webhook_id, "status_code": 500},
    )
    return [(f"rdev.webhooks.{webhook_id}.attempted", attempt),
            (f"rdev.webhooks.{webhook_id}.disabled", event)]  # fmt: skip


async def seed(js) -> None:
    await publish_all(
        js,
        [
            admin_event("api_key", "created", "k-ci", "k-admin", {"id": "k-ci", "name": "ci"}),
            admin_event("project", "created", "alpha", "k-admin", {"id": "alpha"}),
            *webhook_disabled("wh1"),
        ],
    )
    await publish_runs(js, "alpha", 200, actor="k-ci")


async def test_rebuild_while_running_yields_identical_rows_and_chain(
    js, audit_service: AuditProcess, audit_env: dict[str, str], db: Db
) -> None:
    await seed(js)
    await wait_caught_up(js, db, STREAMS, audit_service)
    before, history_before = db.audit_rows(), db.history_rows()
    assert len(before) == 200 * 3 + 2 + 1  # lifecycle + admin + webhook.disabled only

    more = asyncio.create_task(publish_runs(js, "alpha", 50, actor="k-ci"))
    result = await asyncio.to_thread(rdev_cli, audit_env, "audit", "rebuild", "--timeout", "300")
    await more
    assert result.returncode == 0, result.stdout + result.stderr
    await wait_caught_up(js, db, STREAMS, audit_service)

    after = db.audit_rows()
    old_keys = {(r[0], r[1]) for r in before}
    assert [r for r in after if (r[0], r[1]) in old_keys] == before
    assert len(after) == len(before) + 50 * 3
    history_after = {r[0]: r for r in db.history_rows()}
    assert all(history_after[r[0]] == r for r in history_before)
    assert (await verify_db(audit_env["RDEV_DATABASE_URL"])).broken is None


async def test_verify_names_the_tampered_row(
    js, audit_service: AuditProcess, audit_env: dict[str, str], db: Db
) -> None:
    await seed(js)
    await wait_caught_up(js, db, STREAMS, audit_service)
    audit_service.stop()
    ok = rdev_cli(audit_env, "audit", "verify")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "every chain intact" in ok.stdout

    row_id, outcome, actor = db.rows(
        "SELECT id, outcome, actor FROM audit_log WHERE stream = :s AND seq = 123", s=LIFECYCLE
    )[0]
    forged = "failure" if outcome == "success" else "success"
    db.execute("UPDATE audit_log SET outcome = :o WHERE id = :i", o=forged, i=row_id)
    broken = rdev_cli(audit_env, "audit", "verify")
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert f"row id={row_id} stream={LIFECYCLE} seq=123" in broken.stdout
    assert "content does not match its hash" in broken.stdout

    # Put it back, then delete the row before it: the link of row 123 breaks.
    db.execute("UPDATE audit_log SET outcome = :o WHERE id = :i", o=outcome, i=row_id)
    assert rdev_cli(audit_env, "audit", "verify").returncode == 0
    db.execute("DELETE FROM audit_log WHERE stream = :s AND seq = 122", s=LIFECYCLE)
    gone = rdev_cli(audit_env, "audit", "verify")
    assert gone.returncode == 1
    assert f"stream={LIFECYCLE} seq=123: prev_hash does not match" in gone.stdout
    assert actor == "k-ci"
