"""The executor service as deployed (RDEV_EXECUTOR_BACKEND=kubernetes) against the double.

command.requested goes onto the broker as the api publishes it; the executor
process picks it up, runs it in the project's workspace pod and publishes the
run's events.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from nats.aio.client import Client

from rdev_common import streams, subjects
from rdev_common.broker import free_port
from rdev_common.events import (
    CloudEvent,
    CommandCancelRequested,
    CommandRequested,
)
from rdev_common.ids import new_id
from tests.kubernetes.apiserver_double import ApiServerDouble
from tests.kubernetes.conftest import NAMESPACE, SPEC, WAIT_S, group_members, process_group_gone


@pytest.fixture
async def executor(
    nc: Client, kubeconfig: Path, tmp_path: Path, nats_server: Any
) -> AsyncIterator[subprocess.Popen[bytes]]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RDEV_")},
        "RDEV_NATS_URL": nats_server.url,
        "RDEV_DATA_DIR": str(tmp_path / "data"),
        "RDEV_EXECUTOR_BACKEND": "kubernetes",
        "RDEV_EXECUTOR_NAME": "k8s-e2e",
        "RDEV_K8S_KUBECONFIG": str(kubeconfig),
        "RDEV_K8S_NAMESPACE": NAMESPACE,
        "RDEV_KILL_GRACE_S": "2",
        "RDEV_HEALTH_PORT": str(health_port := free_port()),
    }
    log = (tmp_path / "executor.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rdev_executor"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    await wait_ready(proc, f"http://127.0.0.1:{health_port}/readyz", tmp_path / "executor.log")
    yield proc
    proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.to_thread(proc.wait), 15)
    except TimeoutError:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    log.close()


async def wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    """Bounded wait for the executor's /readyz (its start-up is slow on a busy machine)."""
    async with aiohttp.ClientSession() as session:
        for _ in range(600):
            assert proc.poll() is None, f"executor exited: {log.read_text()[-2000:]}"
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"executor not ready after 120 s: {log.read_text()[-2000:]}")


async def publish(
    nc: Client, event: CommandRequested | CommandCancelRequested, subject: str, stream: str
) -> None:
    envelope = CloudEvent.wrap(
        event, source="rdev/test", subject=event.command_id, project=event.project
    )
    await nc.jetstream().publish(
        subject, envelope.to_bytes(), headers={"Nats-Msg-Id": envelope.id}, stream=stream
    )


async def events_until_completed(sub: Any, *, until: str = "completed") -> list[CloudEvent]:
    events: list[CloudEvent] = []
    while not events or not events[-1].type.startswith(f"dev.rdev.command.{until}"):
        msg = await sub.next_msg(timeout=WAIT_S * 2)
        events.append(CloudEvent.from_message(msg.data, msg.headers))
    return events


def stdout_lines(events: list[CloudEvent]) -> list[str]:
    return [
        line
        for e in events
        if e.type.startswith("dev.rdev.command.output") and e.data["stream"] == "stdout"
        for line in e.data["text"].split("\n")
    ]


async def submit(nc: Client, command: str, workdir: Path, **fields: Any) -> tuple[str, Any]:
    req = CommandRequested(
        command_id=new_id(), project="demo", command=command, workdir=str(workdir), **fields
    )
    sub = await nc.subscribe(subjects.run_events("demo", req.command_id))
    await publish(nc, req, subjects.command(req.priority, "demo", req.command_id), streams.COMMANDS)
    return req.command_id, sub


async def test_the_executor_runs_kubernetes_projects_in_their_pod(
    executor: Any, nc: Client, apiserver: ApiServerDouble, tmp_path: Path
) -> None:
    spec = {**SPEC, "workdir": str(tmp_path)}
    _, sub = await submit(nc, "echo in-pod; echo $FROM_SPEC; exit 3", tmp_path, kubernetes=spec)
    events = await events_until_completed(sub)
    completed = events[-1].data
    assert (completed["reason"], completed["exit_code"]) == ("exited", 3), completed
    assert stdout_lines(events) == ["in-pod", "spec-value"]
    assert len(apiserver.pods) == 1 and len(apiserver.execs) == 1

    _, sub = await submit(nc, "echo on-host", tmp_path)  # no spec: the local backend
    events = await events_until_completed(sub)
    assert events[-1].data["exit_code"] == 0 and stdout_lines(events) == ["on-host"]
    assert len(apiserver.execs) == 1, "a project without a spec went to the cluster"


async def test_cancel_through_the_broker_kills_the_pod_command(
    executor: Any, nc: Client, apiserver: ApiServerDouble, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pgid"
    spec = {**SPEC, "workdir": str(tmp_path)}
    cid, sub = await submit(
        nc, f"echo $$ > {pidfile}; echo started; sleep 300", tmp_path, kubernetes=spec
    )
    events = await events_until_completed(sub, until="output")
    assert stdout_lines(events) == ["started"]
    pgid = int(pidfile.read_text())
    assert group_members(pgid)
    cancel = CommandCancelRequested(command_id=cid, project="demo")
    await publish(nc, cancel, subjects.run_event("demo", cid, "cancel_requested"), streams.RUNS)
    events = await events_until_completed(sub)
    completed = events[-1].data
    assert (completed["reason"], completed["exit_code"]) == ("cancelled", 143), completed
    assert await process_group_gone(pgid)


async def test_an_executor_that_dies_leaves_nothing_running_in_the_pod(
    executor: Any, nc: Client, apiserver: ApiServerDouble, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pgid"
    spec = {**SPEC, "workdir": str(tmp_path)}
    _, sub = await submit(
        nc, f"echo $$ > {pidfile}; sleep 300 & echo started; sleep 300", tmp_path, kubernetes=spec
    )
    events = await events_until_completed(sub, until="output")
    assert stdout_lines(events) == ["started"]
    pgid = int(pidfile.read_text())
    assert group_members(pgid)
    os.killpg(executor.pid, signal.SIGKILL)  # its exec connection drops with it
    assert await process_group_gone(pgid), "the dead executor's command still runs in the pod"
