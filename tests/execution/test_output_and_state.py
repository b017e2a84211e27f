"""Output handling end to end, the full log endpoint, state, history and idempotency."""

from __future__ import annotations

import json

import httpx
import nats
import pytest

from rdev_common import streams, subjects
from rdev_common.broker import EmbeddedNats
from rdev_common.events import (
    OUTPUT_TYPE,
    CloudEvent,
    CommandCompleted,
    CommandOutput,
    CommandRequested,
    EventData,
)
from rdev_common.ids import new_id
from tests.e2e.sse_helpers import events_url, read_events, submit
from tests.support import RdevSystem, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def project(system: RdevSystem) -> str:
    system.create_project("out")
    return "out"


def run(system: RdevSystem, project: str, command: str, **extra: object) -> tuple[str, list]:
    with system.client() as client:
        cid = submit(client, project, command, **extra)
        _, events = read_events(client, events_url(project, cid))
    return cid, events


def test_a_one_mebibyte_line_arrives_whole_in_flagged_pieces(
    system: RdevSystem, project: str
) -> None:
    cid, events = run(system, project, "head -c 1048576 /dev/zero | tr '\\0' x; echo; echo end")
    pieces = [e.data for e in events if e.event == "output"]
    assert "".join(p["line"] for p in pieces[:-1]) == "x" * 1048576
    assert all(p.get("partial") for p in pieces[:-2])
    assert not pieces[-2].get("partial")
    assert pieces[-1]["line"] == "end"
    with system.client() as client:
        text = client.get(f"/commands/{cid}/output").text
    assert text == "x" * 1048576 + "\nend\n"


def test_invalid_utf8_is_replaced(system: RdevSystem, project: str) -> None:
    _, events = run(system, project, "printf 'bad \\377\\376 bytes\\n'")
    assert [e.data["line"] for e in events if e.event == "output"] == ["bad \ufffd\ufffd bytes"]
    assert events[-1].data["exit_code"] == 0


def logged_run(system: RdevSystem, project: str, command: str) -> tuple[list[dict], str]:
    """Run `command` to a clean exit; its log as JSON lines (parsed) and as text."""
    cid, events = run(system, project, command)
    assert events[-1].data["exit_code"] == 0
    with system.client() as client:
        jsonl = client.get(f"/commands/{cid}/output", params={"format": "jsonl"}).text
        text = client.get(f"/commands/{cid}/output").text
    return [json.loads(row) for row in jsonl.splitlines()], text


def test_a_batch_too_large_for_the_broker_goes_in_parts_in_order(
    system: RdevSystem, project: str
) -> None:
    # 300,000 lines of one character, every other one ended by CR: a batch lists
    # those in its `ce-cr` header, and a 512 KiB batch's list is far over the 64 KiB
    # of headers JetStream stores.
    rows, text = logged_run(system, project, "yes '.\r.' | head -n 150000; echo done")
    assert [r["n"] for r in rows[:-1]] == list(range(1, 300002))
    assert all(r["line"] == "." for r in rows[:300000])
    assert [i for i, r in enumerate(rows[:300000]) if r.get("cr")] == list(range(0, 300000, 2))
    assert rows[300000]["line"] == "done"
    assert rows[-1]["complete"]["lines"] == 300001
    assert text == ".\r.\n" * 150000 + "done\n"


def test_a_batch_over_the_brokers_message_size_goes_in_parts_in_order(
    system: RdevSystem, project: str
) -> None:
    # Batches are cut at 512 Ki characters; of four-byte characters that is 2 MiB,
    # twice the broker's 1 MiB: each goes as halves of halves.
    line = "\U0001f600" * 99
    command = "yes \"$(printf '\\360\\237\\230\\200%.0s' $(seq 1 99))\" | head -n 6000"
    rows, text = logged_run(system, project, command)
    assert [r["n"] for r in rows[:-1]] == list(range(1, 6001))
    assert all(r["line"] == line and "partial" not in r for r in rows[:-1])
    assert text == (line + "\n") * 6000


async def test_output_is_stored_as_its_text_in_binary_mode(
    system: RdevSystem, project: str, broker: EmbeddedNats
) -> None:
    cid, _ = run(system, project, 'echo one; echo "two \\"quoted\\""')
    nc = await nats.connect(broker.url)
    try:
        msg = await nc.jetstream().get_last_msg(
            streams.RUNS, subjects.run_event(project, cid, "output"), direct=True
        )
    finally:
        await nc.close()
    headers = msg.headers or {}
    assert msg.data == b'one\ntwo "quoted"'
    assert headers["ce-type"] == OUTPUT_TYPE
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert (headers["ce-subject"], headers["ce-project"]) == (cid, project)
    assert (headers["ce-stream"], headers["ce-firstline"]) == ("stdout", "1")
    assert headers["Nats-Msg-Id"] == headers["ce-id"]


async def test_output_stored_as_json_before_binary_mode_still_replays(
    system: RdevSystem, project: str, broker: EmbeddedNats
) -> None:
    """A run whose output is `…output.v1` (JSON structured), as stored by an older
    executor, reads back through SSE and /output as before."""
    cid = new_id()
    output = CommandOutput(
        command_id=cid, stream="stdout", first_line=1, lines=["old", 'q"uote', "10%"], cr=[2]
    )
    completed = CommandCompleted(
        command_id=cid, project=project, exit_code=0, reason="exited", duration_ms=1, lines=3
    )
    requested = CommandRequested(command_id=cid, project=project, command="true")
    nc = await nats.connect(broker.url)

    async def store(event: EventData, subject: str, stream: str) -> None:
        envelope = CloudEvent.wrap(event, source="rdev/old", subject=cid, project=project)
        await nc.jetstream().publish(
            subject, envelope.to_bytes(), headers={"Nats-Msg-Id": envelope.id}, stream=stream
        )

    try:
        # The run's end is stored before its request, so no executor runs it again.
        await store(output, subjects.run_event(project, cid, "output"), streams.RUNS)
        await store(completed, subjects.run_event(project, cid, "completed"), streams.RUNS)
        await store(requested, subjects.command("normal", project, cid), streams.COMMANDS)
    finally:
        await nc.close()
    with system.client() as client:
        _, events = read_events(client, events_url(project, cid))
        text = client.get(f"/commands/{cid}/output").content
    assert [(e.data["line"], e.data.get("cr")) for e in events if e.event == "output"] == [
        ("old", None),
        ('q"uote', None),
        ("10%", True),
    ]
    assert text == b'old\nq"uote\n10%\r'


def test_output_endpoint_text_and_jsonl(system: RdevSystem, project: str) -> None:
    cid, _ = run(system, project, "echo one; echo two >&2; echo three")
    with system.client() as client:
        text = client.get(f"/commands/{cid}/output")
        jsonl = client.get(f"/commands/{cid}/output", params={"format": "jsonl"})
    assert text.headers["content-type"].startswith("text/plain")
    assert sorted(text.text.splitlines()) == ["one", "three", "two"]
    rows = [json.loads(line) for line in jsonl.text.splitlines()]
    assert [r["n"] for r in rows[:-1]] == [1, 2, 3]
    assert {r["line"]: r["stream"] for r in rows[:-1]} == {
        "one": "stdout",
        "two": "stderr",
        "three": "stdout",
    }
    assert rows[-1]["complete"]["exit_code"] == 0


def test_output_follow_streams_while_running(system: RdevSystem, project: str) -> None:
    with system.client() as client:
        cid = submit(client, project, "for i in 1 2 3; do echo tick $i; sleep 0.3; done")
        with client.stream("GET", f"/commands/{cid}/output", params={"follow": "true"}) as r:
            got = [line for line in r.iter_lines() if line]
    assert got == ["tick 1", "tick 2", "tick 3"]


def test_state_is_queued_right_after_submit_then_completed(
    system: RdevSystem, project: str
) -> None:
    with system.client() as client:
        cid = submit(client, project, "sleep 0.5; exit 4")
        first = client.get(f"/commands/{cid}").json()["data"]
        assert first["status"] in ("queued", "running")
        wait_for(
            lambda: client.get(f"/commands/{cid}").json()["data"]["status"] == "completed",
            20,
            "command did not complete",
        )
        done = client.get(f"/commands/{cid}").json()["data"]
    assert (done["exit_code"], done["reason"]) == (4, "exited")
    assert done["started_at"] and done["completed_at"] and done["duration_ms"] >= 400


def test_history_is_newest_first_with_cursor_pages_and_status_filter(system: RdevSystem) -> None:
    system.create_project("hist")
    with system.client() as client:
        ids = [submit(client, "hist", f"echo {i}") for i in range(5)]
        for cid in ids:
            read_events(client, events_url("hist", cid))
        page1 = client.get("/projects/hist/commands", params={"limit": 3}).json()
        page2 = client.get(
            "/projects/hist/commands", params={"limit": 3, "cursor": page1["next_cursor"]}
        ).json()
        running = client.get("/projects/hist/commands", params={"status": "running"}).json()
    assert [c["id"] for c in page1["data"] + page2["data"]] == list(reversed(ids))
    assert page2["next_cursor"] is None
    assert running["data"] == []


def test_idempotency_key_gives_the_same_command_and_one_run(
    system: RdevSystem, project: str
) -> None:
    headers = {"Idempotency-Key": "deploy-42"}
    with system.client() as client:
        first = client.post(
            f"/projects/{project}/shell", json={"command": "echo once"}, headers=headers
        )
        second = client.post(
            f"/projects/{project}/shell", json={"command": "echo once"}, headers=headers
        )
        cid = first.json()["data"]["id"]
        _, events = read_events(client, events_url(project, cid))
        history = client.get(f"/projects/{project}/commands", params={"limit": 500}).json()
    assert first.status_code == second.status_code == 202
    assert second.json()["data"]["id"] == cid
    assert second.headers.get("idempotent-replayed") == "true"
    assert [e.data["line"] for e in events if e.event == "output"] == ["once"]
    assert [c["id"] for c in history["data"]].count(cid) == 1


def test_idempotency_survives_an_api_restart(system: RdevSystem, project: str) -> None:
    from tests.support import service_pids

    headers = {"Idempotency-Key": "restart-1"}
    with system.client() as client:
        cid = client.post(
            f"/projects/{project}/shell", json={"command": "true"}, headers=headers
        ).json()["data"]["id"]
    import os
    import signal

    (api_pid,) = service_pids(system, "api")
    os.kill(api_pid, signal.SIGKILL)

    def replayed() -> str | None:
        try:
            r = httpx.post(
                f"{system.base_url}/projects/{project}/shell",
                json={"command": "true"},
                headers={**system.headers, **headers},
            )
        except httpx.HTTPError:
            return None
        return r.json()["data"]["id"] if r.status_code == 202 else None

    assert wait_for(replayed, 60, "the api did not come back") == cid


def test_secrets_sealed_under_a_key_the_executor_lacks_fail_the_run_clearly(
    system: RdevSystem,
) -> None:
    import asyncio

    import nats

    from rdev_common.sealing import Sealer, generate_key, seal

    system.create_project("sealed-elsewhere")

    async def store() -> None:
        nc = await nats.connect(system.env["RDEV_NATS_URL"])
        kv = await nc.jetstream().key_value("rdev_secrets")
        value = seal("sealed-elsewhere", {"DEPLOY_TOKEN": "x"}, Sealer([generate_key()]))
        await kv.put("sealed-elsewhere", value)
        await nc.close()

    asyncio.run(store())
    _, events = run(system, "sealed-elsewhere", "echo ran")
    kinds = [e.event for e in events]
    assert "output" not in kinds, "it must not run without its secrets"
    assert kinds[-2:] == ["error", "complete"], kinds
    error, done = events[-2].data, events[-1].data
    assert (done["exit_code"], done["reason"]) == (255, "error")
    assert "no key of RDEV_SECRETS_KEY opens" in error["message"]


def test_project_secrets_are_env_vars_and_never_in_output(system: RdevSystem) -> None:
    import asyncio

    import nats

    from rdev_common.sealing import Sealer, seal

    system.create_project("secretive")
    secret = "s3cr3t-" + "q" * 20

    async def store() -> None:
        nc = await nats.connect(system.env["RDEV_NATS_URL"])
        kv = await nc.jetstream().key_value("rdev_secrets")
        # Sealed as the api does it, under the key `rdev up` made for this system.
        key = (system.data_dir / "secrets.key").read_text().strip()
        await kv.put("secretive", seal("secretive", {"DEPLOY_TOKEN": secret}, Sealer([key])))
        await nc.close()

    asyncio.run(store())
    cid, events = run(
        system, "secretive", "echo token=$DEPLOY_TOKEN; printf 'split:%s' \"$DEPLOY_TOKEN\"; echo"
    )
    lines = [e.data["line"] for e in events if e.event == "output"]
    assert lines == ["token=[REDACTED]", "split:[REDACTED]"]
    with system.client() as client:
        assert secret not in client.get(f"/commands/{cid}/output").text
