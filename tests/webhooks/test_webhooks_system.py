"""Webhooks through the whole system: signed deliveries of real runs, and every fault.

A real receiver on loopback verifies each signature with `standardwebhooks`.
The system runs with a fast retry schedule so the faults play out in seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from rdev_common.broker import connect, free_port
from tests.e2e.sse_helpers import submit
from tests.support import RdevSystem, system_env, wait_for
from tests.webhooks.receiver import Received, Receiver
from tests.webhooks.system import (
    child_pid,
    deliveries,
    delivery,
    nats_url,
    register,
    wait_all_succeeded,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EVENTS_PER_RUN = 3  # requested, started, completed
WAIT = 120  # seconds: bounded waits, generous for a busy machine


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RdevSystem]:
    data_dir = tmp_path_factory.mktemp("webhooks-system")
    port, key = free_port(), "rdev_test_" + os.urandom(12).hex()
    env = system_env(
        data_dir,
        port,
        key,
        RDEV_WEBHOOKS_RETRY_SCHEDULE="0,1,1,2,2,3,5,10,20",
        RDEV_WEBHOOKS_TIMEOUT_S="10",
        RDEV_WEBHOOKS_BREAKER_COOLDOWN_S="1",
        RDEV_WEBHOOKS_POLL_INTERVAL_S="0.1",
    )
    system = RdevSystem(data_dir, port, key, env)
    try:  # stopped even when it never became ready, so nothing is left running
        system.start(timeout=240)
        yield system
    finally:
        system.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.start()
    yield r
    r.stop()


@pytest.fixture
def client(system: RdevSystem) -> Iterator[httpx.Client]:
    with system.client() as c:
        yield c


def _verified(received: list[Received]) -> bool:
    return all(r.verified and all(r.verified) for r in received)


def test_runs_are_delivered_signed_rotated_redelivered_and_replayed(
    system: RdevSystem, receiver: Receiver, client: httpx.Client
) -> None:
    system.create_project("wh-basic")
    hook = register(client, receiver, "wh-basic", "/basic")
    submit(client, "wh-basic", "echo hi")
    wait_for(lambda: len(receiver.at("/basic")) >= EVENTS_PER_RUN, WAIT, "3 deliveries expected")
    got = receiver.at("/basic")
    assert _verified(got), "a signature did not verify"
    assert sorted(r.event["type"] for r in got) == [
        "dev.rdev.command.completed.v1",
        "dev.rdev.command.requested.v1",
        "dev.rdev.command.started.v1",
    ]
    listed = wait_all_succeeded(client, "wh-basic", hook["id"], EVENTS_PER_RUN)
    assert {d["id"] for d in listed} == {r.webhook_id for r in got}
    detail = delivery(client, "wh-basic", hook["id"], listed[0]["id"])
    assert [(a["n"], a["outcome"], a["status_code"]) for a in detail["history"]] == [
        (1, "succeeded", 200)
    ]

    # Rotation: during the overlap both the old and the new secret verify every message.
    r = client.post(f"/projects/wh-basic/webhooks/{hook['id']}/rotate-secret", json={})
    assert r.status_code == 200, r.text
    new_secret = r.json()["data"]["secret"]
    assert new_secret != hook["secret"]
    receiver.endpoints["/basic"].secrets = [hook["secret"], new_secret]
    submit(client, "wh-basic", "echo again")
    wait_for(lambda: len(receiver.at("/basic")) >= 2 * EVENTS_PER_RUN, WAIT, "second run")
    assert all(r.verified == [True, True] for r in receiver.at("/basic")[EVENTS_PER_RUN:])

    # Redeliver: the same CloudEvent under a new webhook-id.
    first = got[0]
    r = client.post(
        f"/projects/wh-basic/webhooks/{hook['id']}/deliveries/{first.webhook_id}/redeliver"
    )
    assert r.status_code == 202, r.text
    (again,) = r.json()["data"]["deliveries"]
    resent = wait_for(
        lambda: [x for x in receiver.at("/basic") if x.webhook_id == again], WAIT, "redelivery"
    )
    assert resent[0].event["id"] == first.event["id"]

    # Replay from stream sequence 1: every event of the project again, in order.
    r = client.post(f"/projects/wh-basic/webhooks/{hook['id']}/replay", params={"since": "1"})
    assert r.status_code == 202, r.text
    replayed = r.json()["data"]["deliveries"]
    assert len(replayed) == 2 * EVENTS_PER_RUN
    wait_for(lambda: {x.webhook_id for x in receiver.at("/basic")} >= set(replayed), WAIT, "replay")
    assert _verified(receiver.at("/basic"))

    # Cursor pages cover every delivery exactly once.
    pages, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = client.get(
            f"/projects/wh-basic/webhooks/{hook['id']}/deliveries", params=params
        ).json()
        pages += [d["id"] for d in body["data"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert len(pages) == len(set(pages)) == 4 * EVENTS_PER_RUN + 1


def test_admin_changes_of_the_project_are_delivered_too(
    system: RdevSystem, receiver: Receiver, client: httpx.Client
) -> None:
    system.create_project("wh-admin")
    hook = register(client, receiver, "wh-admin", "/admin", events=["project.*", "webhook.*"])
    r = client.patch("/projects/wh-admin", json={"default_timeout_s": 30})
    assert r.status_code == 200, r.text
    r = client.post(f"/projects/wh-admin/webhooks/{hook['id']}/rotate-secret", json={})
    assert r.status_code == 200, r.text
    receiver.endpoints["/admin"].secrets = [hook["secret"], r.json()["data"]["secret"]]
    submit(client, "wh-admin", "echo not asked for")  # command.* is not in its events
    expected = [
        "dev.rdev.project.updated.v1",
        "dev.rdev.webhook.created.v1",
        "dev.rdev.webhook.rotated.v1",
    ]
    wait_for(
        lambda: set(expected) <= {x.event["type"] for x in receiver.at("/admin")},
        WAIT,
        "admin deliveries",
    )
    wait_all_succeeded(client, "wh-admin", hook["id"], len(expected))
    got = receiver.at("/admin")
    kinds = {x.event["type"] for x in got}
    # project.created too when the service took it after the registration committed.
    assert set(expected) <= kinds <= {*expected, "dev.rdev.project.created.v1"}, kinds
    assert len(got) == len(kinds), "each admin event delivered once"
    assert all(x.event["project"] == "wh-admin" for x in got)
    assert all(x.verified and x.verified[0] for x in got), "the first secret signs throughout"
    (updated,) = [x for x in got if x.event["type"] == expected[0]]
    assert updated.event["data"]["changed"] == ["default_timeout_s"]


def test_receiver_down_then_up_gets_every_event_with_a_stable_id(
    system: RdevSystem, client: httpx.Client
) -> None:
    system.create_project("wh-down")
    down = Receiver()  # not started yet: connections are refused
    hook = register(client, down, "wh-down", "/down")
    for i in range(2):
        submit(client, "wh-down", f"echo {i}")
    expected = 2 * EVENTS_PER_RUN

    def retried() -> bool:
        found = deliveries(client, "wh-down", hook["id"])
        return len(found) == expected and all(d["attempts"] >= 2 for d in found)

    wait_for(retried, WAIT, "every delivery should have failed at least twice")
    down.start()
    try:
        found = wait_all_succeeded(client, "wh-down", hook["id"], expected)
    finally:
        down.stop()
    got = down.at("/down")
    assert _verified(got)
    ids = Counter(r.webhook_id for r in got)
    assert set(ids) == {d["id"] for d in found}, "webhook-id must be the delivery id"
    assert all(n == 1 for n in ids.values()), "each delivery reached the receiver once"
    for d in found:
        history = delivery(client, "wh-down", hook["id"], d["id"])["history"]
        assert [a["n"] for a in history] == list(range(1, d["attempts"] + 1))
        assert all(a["outcome"] == "failed" and a["error"] for a in history[:-1])
        assert history[-1]["outcome"] == "succeeded"
        (seen,) = [r for r in got if r.webhook_id == d["id"]]
        assert seen.attempt == d["attempts"]


def test_a_hanging_endpoint_does_not_delay_a_healthy_one(
    system: RdevSystem, receiver: Receiver, client: httpx.Client
) -> None:
    system.create_project("wh-hang")
    hanging = receiver.endpoint("/hang", behaviour="hang")
    slow = register(client, receiver, "wh-hang", "/hang")
    register(client, receiver, "wh-hang", "/fast")
    try:
        for i in range(3):
            submit(client, "wh-hang", f"echo {i}")
        wait_for(
            lambda: len(receiver.at("/fast")) >= 3 * EVENTS_PER_RUN, WAIT, "healthy deliveries"
        )
        # Every healthy delivery arrived while the hanging endpoint had not finished one
        # attempt: its requests are still held open by the receiver.
        assert _verified(receiver.at("/fast"))
        assert receiver.at("/hang") == []
        in_flight = receiver.arrivals("/hang")
        assert 1 <= in_flight <= 4, f"{in_flight} requests held by the hanging endpoint"
        hung = deliveries(client, "wh-hang", slow["id"])
        assert all(d["status"] == "pending" and d["last_error"] is None for d in hung)
    finally:
        hanging.release.set()
    client.patch(f"/projects/wh-hang/webhooks/{slow['id']}", json={"enabled": False})


async def test_410_disables_the_endpoint_and_says_so_on_rdev_webhooks(
    system: RdevSystem, receiver: Receiver, client: httpx.Client
) -> None:
    system.create_project("wh-gone")
    receiver.endpoint("/gone", behaviour="gone")
    hook = register(client, receiver, "wh-gone", "/gone")
    submit(client, "wh-gone", "echo bye")

    def disabled() -> dict[str, Any] | None:
        body = client.get(f"/projects/wh-gone/webhooks/{hook['id']}").json()["data"]
        return body if not body["enabled"] else None

    state = wait_for(disabled, WAIT, "410 should disable the webhook")
    assert "410" in state["disabled_reason"]
    nc = await connect(nats_url(system), "test", **system.broker_login())
    try:
        js = nc.jetstream()
        # The event follows the commit through the webhooks service's outbox.
        announced = f"rdev.webhooks.{hook['id']}.disabled"
        async with asyncio.timeout(WAIT):
            while (
                info := await js.stream_info("RDEV_WEBHOOKS", subjects_filter=announced)
            ).state.subjects is None:
                await asyncio.sleep(0.05)
        assert info.state.subjects == {announced: 1}, "one disable, one event"
        msg = await js.get_last_msg("RDEV_WEBHOOKS", announced)
        assert msg.data is not None and b"410" in msg.data
        attempt = await js.get_last_msg("RDEV_WEBHOOKS", f"rdev.webhooks.{hook['id']}.attempt")
        assert attempt.data is not None and b'"status_code":410' in attempt.data
    finally:
        await nc.close()

    # Deliveries claimed before the disable still went out once; later ones are never sent
    # (and events after the disable get no delivery at all).
    def settled() -> list[dict[str, Any]] | None:
        found = deliveries(client, "wh-gone", hook["id"])
        return found if found and all(d["status"] == "failed" for d in found) else None

    found = wait_for(settled, WAIT, "deliveries to a disabled endpoint end as failed")
    assert all(d["attempts"] <= 1 for d in found)
    assert len(receiver.at("/gone")) == sum(d["attempts"] for d in found) >= 1


def test_killed_mid_schedule_the_schedule_continues_without_loss_or_repeat(
    system: RdevSystem, receiver: Receiver, client: httpx.Client
) -> None:
    """Kill the webhooks service while second attempts are on the wire (the receiver holds
    them): they are closed as interrupted, the schedule goes on, no attempt is sent twice."""
    system.create_project("wh-kill")
    flaky = receiver.endpoint("/flaky", fail_first=3, hold_attempt=2)
    hook = register(client, receiver, "wh-kill", "/flaky")
    for i in range(3):
        submit(client, "wh-kill", f"echo {i}")
    expected = 3 * EVENTS_PER_RUN
    wait_for(lambda: receiver.arrivals("/flaky", attempt=2), WAIT, "a second attempt on the wire")
    before = child_pid(system, "rdev_webhooks")
    assert before is not None, "no webhooks service under rdev up"
    os.kill(before, signal.SIGKILL)
    flaky.release.set()
    wait_for(lambda: (child_pid(system, "rdev_webhooks") or before) != before, WAIT, "restart")
    found = wait_all_succeeded(client, "wh-kill", hook["id"], expected, timeout=240)
    got = receiver.at("/flaky")
    assert _verified(got)
    pairs = Counter((r.webhook_id, r.attempt) for r in got)
    assert all(n == 1 for n in pairs.values()), f"an attempt was sent twice: {pairs}"
    assert {r.webhook_id for r in got} == {d["id"] for d in found}
    interrupted = 0
    for d in found:
        history = delivery(client, "wh-kill", hook["id"], d["id"])["history"]
        assert [a["n"] for a in history] == list(range(1, d["attempts"] + 1))
        seen = {r.attempt for r in got if r.webhook_id == d["id"]}
        for a in history:
            # An attempt the receiver never saw can only be one the kill cut short.
            assert a["n"] in seen or a["outcome"] == "interrupted", (d["id"], a)
        interrupted += sum(a["outcome"] == "interrupted" for a in history)
        assert history[-1]["outcome"] == "succeeded"
        assert sum(r.status == 200 for r in got if r.webhook_id == d["id"]) == 1
    assert interrupted >= 1, "the kill should have cut at least one attempt short"


async def test_a_result_the_database_refused_is_interrupted_in_stream_and_table_alike(
    system: RdevSystem, receiver: Receiver, client: httpx.Client
) -> None:
    """The receiver answers attempt 1 while another writer holds the database: its result
    cannot be recorded. After the lease the attempt is closed as interrupted and attempt 2
    goes out; the attempt events on RDEV_WEBHOOKS say exactly what each history says."""
    system.create_project("wh-dbdown")
    held = receiver.endpoint("/dbdown", hold_attempt=1)
    hook = register(client, receiver, "wh-dbdown", "/dbdown")
    submit(client, "wh-dbdown", "echo db")
    wait_for(
        lambda: receiver.arrivals("/dbdown", attempt=1) >= EVENTS_PER_RUN,
        WAIT,
        "every first attempt on the wire",
    )
    held_ids = {d["id"] for d in deliveries(client, "wh-dbdown", hook["id"])}
    log_from = len(system.log_path.read_bytes())

    def refused() -> bool:
        """A record of one of these deliveries failed (not some other delivery's claim)."""
        text = system.log_path.read_bytes()[log_from:].decode(errors="replace")
        return any(
            "attempt failed" in line and any(i in line for i in held_ids)
            for line in text.splitlines()
        )

    db = sqlite3.connect(system.data_dir / "rdev.db", isolation_level=None)
    db.execute("BEGIN EXCLUSIVE")  # the database away for writers
    try:
        held.release.set()
        wait_for(refused, WAIT, "a result the database refused (after its busy timeout)")
    finally:
        db.execute("ROLLBACK")
        db.close()
    found = wait_all_succeeded(client, "wh-dbdown", hook["id"], EVENTS_PER_RUN, timeout=WAIT)
    tables = {
        d["id"]: [
            (a["n"], a["outcome"])
            for a in delivery(client, "wh-dbdown", hook["id"], d["id"])["history"]
        ]
        for d in found
    }
    assert any(("interrupted" in dict(h).values()) for h in tables.values()), tables
    expected = sum(len(h) for h in tables.values())
    nc = await connect(nats_url(system), "test", **system.broker_login())
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe(f"rdev.webhooks.{hook['id']}.attempt", stream="RDEV_WEBHOOKS")
        said: dict[str, list[tuple[int, str]]] = {}
        async with asyncio.timeout(WAIT):
            while sum(map(len, said.values())) < expected:
                with contextlib.suppress(TimeoutError):
                    for msg in await sub.fetch(100, timeout=1):
                        data = json.loads(msg.data)["data"]
                        said.setdefault(data["delivery_id"], []).append(
                            (data["attempt"], data["outcome"])
                        )
                        await msg.ack()
        with contextlib.suppress(TimeoutError):  # and nothing more
            extra = await sub.fetch(1, timeout=1)
            assert not extra, [m.data for m in extra]
    finally:
        await nc.close()
    assert said == tables


def test_unknown_webhook_and_scope(system: RdevSystem, client: httpx.Client) -> None:
    system.create_project("wh-misc")
    assert client.get("/projects/wh-misc/webhooks/nope").status_code == 404
    r = client.post(
        "/projects/wh-misc/webhooks", json={"url": "ftp://x.example/", "events": ["command.*"]}
    )
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "url"
    assert client.get("/projects/absent/webhooks").status_code == 404
