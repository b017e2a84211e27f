"""The broker `rdev up` runs takes only its own identities, each with least privilege.

Publishing `command.requested` on `rdev.commands.>` would have the executor run
anything, past keys, scopes and audit: only the api may. Nobody without a
password gets in; the observer reads everything rdev publishes and changes
nothing.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.js.api import ConsumerConfig, StreamConfig

from rdev_common import subjects
from rdev_common.broker import connect
from rdev_common.events import Priority
from rdev_common.streams import ADMIN, COMMANDS, RUNS
from tests.audit.support import rdev_cli
from tests.e2e.sse_helpers import events_url, read_events, submit
from tests.support import RdevSystem

pytestmark = pytest.mark.e2e

VIOLATION_WAIT_S = 10.0


@asynccontextmanager
async def login(system: RdevSystem, user: str | None) -> AsyncIterator[tuple[Client, list[str]]]:
    """A client as `user` (None: no credentials) and the errors the broker sends it."""
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    credentials = system.broker_login(user) if user else {}
    nc = await nats.connect(
        system.nats_url(),
        error_cb=on_error,
        allow_reconnect=False,
        connect_timeout=5,
        inbox_prefix=f"_INBOX_{user}" if user else "_INBOX",
        **credentials,
    )
    try:
        yield nc, errors
    finally:
        await nc.close()


async def refused(errors: list[str], subject: str) -> None:
    """Wait for the broker's permissions violation naming `subject` (the client reports
    it in lower case)."""
    wanted = subject.lower()
    async with asyncio.timeout(VIOLATION_WAIT_S):
        while not any("permissions violation" in e.lower() and wanted in e.lower() for e in errors):
            await asyncio.sleep(0.05)


def requested(project: str) -> tuple[str, bytes]:
    """A `command.requested` event as the api would publish it, from someone else."""
    command_id = f"cmd_{uuid.uuid4().hex}"
    event = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/intruder",
        "type": "dev.rdev.command.requested.v1",
        "data": {"command_id": command_id, "project_id": project, "command": "id"},
    }
    return subjects.command(Priority.NORMAL, project, command_id), json.dumps(event).encode()


async def commands_last_seq(system: RdevSystem) -> int:
    async with login(system, "observer") as (nc, _):
        return int((await nc.jetstream().stream_info(COMMANDS)).state.last_seq or 0)


def test_a_client_without_credentials_is_refused(rdev: RdevSystem) -> None:
    async def attempt(**credentials: Any) -> None:
        nc = await nats.connect(
            rdev.nats_url(), allow_reconnect=False, connect_timeout=5, **credentials
        )
        await nc.close()

    for credentials in ({}, {"user": "api", "password": "guessed"}, {"user": "root"}):
        with pytest.raises((nats.errors.Error, OSError)) as info:
            asyncio.run(attempt(**credentials))
        assert "authorization" in str(info.value).lower() or isinstance(
            info.value, nats.errors.NoServersError
        ), repr(info.value)


@pytest.mark.parametrize("user", ["observer", "webhooks", "audit", "executor"])
async def test_only_the_api_may_publish_a_command(rdev: RdevSystem, user: str) -> None:
    before = await commands_last_seq(rdev)
    subject, body = requested("intruded")
    async with login(rdev, user) as (nc, errors):
        await nc.publish(subject, body)  # a plain publish, stored by the stream all the same
        with pytest.raises(nats.errors.TimeoutError):
            await nc.jetstream().publish(subject, body, timeout=2)
        await refused(errors, subject)
    assert await commands_last_seq(rdev) == before, f"{user} got a command into {COMMANDS}"


@pytest.mark.parametrize("user", ["observer", "webhooks", "audit"])
async def test_only_the_api_and_executor_may_write_a_run(rdev: RdevSystem, user: str) -> None:
    """A forged `completed` would end someone's run in every client's view."""
    subject = f"rdev.runs.forged.cmd_{uuid.uuid4().hex}.completed"
    async with login(rdev, user) as (nc, errors):
        with pytest.raises(nats.errors.TimeoutError):
            await nc.jetstream().publish(subject, b"{}", timeout=2)
        await refused(errors, subject)
    async with login(rdev, "observer") as (nc, _):
        info = await nc.jetstream().stream_info(RUNS, subjects_filter="rdev.runs.forged.>")
        assert not info.state.subjects, info.state.subjects


async def test_the_observer_can_neither_define_nor_delete_streams(rdev: RdevSystem) -> None:
    async with login(rdev, "observer") as (nc, errors):
        js = nc.jetstream(timeout=2)
        with pytest.raises(nats.errors.TimeoutError):
            await js.add_stream(StreamConfig(name="INTRUDER", subjects=["rdev.commands.>"]))
        await refused(errors, "$JS.API.STREAM.CREATE.INTRUDER")
        with pytest.raises(nats.errors.TimeoutError):
            await js.delete_stream(COMMANDS)
        await refused(errors, f"$JS.API.STREAM.DELETE.{COMMANDS}")
        with pytest.raises(nats.errors.TimeoutError):
            await js.purge_stream(RUNS)
        await refused(errors, f"$JS.API.STREAM.PURGE.{RUNS}")
        # Nor take commands from the executor's consumer, or delete it.
        with pytest.raises(nats.errors.TimeoutError):
            await js.delete_consumer(COMMANDS, "executor-normal")
        await refused(errors, f"$JS.API.CONSUMER.DELETE.{COMMANDS}.executor-normal")
        # Nor acknowledge a command for it (the command would be lost unrun).
        ack = f"$JS.ACK.{COMMANDS}.executor-normal.1.1.1.1.0"
        await nc.publish(ack, b"+ACK")
        await refused(errors, ack)
        # Nor redefine it (a durable's name in the create subject is denied).
        with pytest.raises(nats.errors.TimeoutError):
            await js.add_consumer(
                COMMANDS,
                ConsumerConfig(
                    name="executor-normal",
                    durable_name="executor-normal",
                    filter_subject="rdev.commands.normal.intruded.*",
                ),
            )
        await refused(errors, f"$JS.API.CONSUMER.CREATE.{COMMANDS}.executor-normal.")
        # Nor read the (sealed) project secrets.
        with pytest.raises(nats.errors.TimeoutError):
            await js.get_last_msg("KV_rdev_secrets", "$KV.rdev_secrets.any")
        await refused(errors, "$JS.API.STREAM.MSG.GET.KV_rdev_secrets")
    async with login(rdev, "observer") as (nc, _):
        assert (await nc.jetstream().stream_info(COMMANDS)).config.name == COMMANDS


async def test_the_webhooks_identity_cannot_define_streams_either(rdev: RdevSystem) -> None:
    async with login(rdev, "webhooks") as (nc, errors):
        js = nc.jetstream(timeout=2)
        with pytest.raises(nats.errors.TimeoutError):
            await js.delete_stream(ADMIN)
        await refused(errors, f"$JS.API.STREAM.DELETE.{ADMIN}")
        with pytest.raises(nats.errors.TimeoutError):
            await js.update_stream(StreamConfig(name=RUNS, subjects=["rdev.>"]))
        await refused(errors, f"$JS.API.STREAM.UPDATE.{RUNS}")


async def test_the_observer_reads_a_run_live_and_from_history(rdev: RdevSystem) -> None:
    """How an internal subscriber connects (docs/events.md): observer, own inbox prefix."""
    rdev.create_project("observed")
    seen: list[str] = []
    nc = await connect(rdev.nats_url(), "test-observer", **rdev.broker_login("observer"))
    try:
        done = asyncio.Event()

        async def on_event(msg: Any) -> None:
            seen.append(msg.subject)
            if msg.subject.endswith(".completed"):
                done.set()

        await nc.subscribe(subjects.project_run_events("observed"), cb=on_event)
        with rdev.client() as c:
            cid = await asyncio.to_thread(submit, c, "observed", "echo watched")
            status, _ = await asyncio.to_thread(read_events, c, events_url("observed", cid))
        assert status == 200
        async with asyncio.timeout(30):
            await done.wait()
        assert f"rdev.runs.observed.{cid}.started" in seen, seen
        js = nc.jetstream()
        sub = await js.subscribe(subjects.run_events("observed", cid), ordered_consumer=True)
        kinds = []
        async with asyncio.timeout(30):
            while not kinds or kinds[-1] != "completed":
                msg = await sub.next_msg(timeout=10)
                kinds.append(msg.subject.rsplit(".", 1)[1])
                if kinds[-1] == "output":
                    assert "watched" in json.dumps(msg.data.decode())
        assert kinds[0] == "requested" and "started" in kinds, kinds
        await sub.unsubscribe()
    finally:
        await nc.close()


def test_credentials_are_kept_from_other_users(rdev: RdevSystem) -> None:
    for path in (
        rdev.data_dir / "nats-credentials.json",
        rdev.data_dir / "nats" / "nats-server.conf",
    ):
        assert path.stat().st_mode & 0o777 == 0o600, path


def test_rdev_events_logs_in_as_the_observer_next_to_rdev_up(rdev: RdevSystem) -> None:
    """Without RDEV_NATS_USER the CLI reads the data dir's observer credentials."""
    rdev.create_project("cli-observed")
    with rdev.client() as c:
        cid = submit(c, "cli-observed", "echo seen")
        status, _ = read_events(c, events_url("cli-observed", cid))
    assert status == 200
    env = {**rdev.env, "RDEV_NATS_URL": rdev.nats_url()}
    info = rdev_cli(env, "events", "info", "--json", timeout=120)
    assert info.returncode == 0, info.stdout + info.stderr
    streams = {s["name"] for s in json.loads(info.stdout)["streams"]}
    assert COMMANDS in streams
    replay = rdev_cli(
        env,
        "events",
        "replay",
        "--stream",
        "RDEV_LIFECYCLE",
        "--subject",
        f"rdev.runs.cli-observed.{cid}.*",
        timeout=120,
    )
    assert replay.returncode == 0, replay.stderr
    kinds = [json.loads(line)["type"] for line in replay.stdout.splitlines()]
    assert kinds[0] == "dev.rdev.command.requested.v1" and kinds[-1].endswith("completed.v1")
    # A wrong password is refused, not ignored.
    refused_env = {**env, "RDEV_NATS_USER": "observer", "RDEV_NATS_PASSWORD": "wrong"}
    wrong = rdev_cli(refused_env, "events", "info", "--json", timeout=120)
    assert wrong.returncode != 0
    assert "the broker refused user 'observer'" in wrong.stderr, wrong.stderr[-2000:]
