"""rdev (`rdev up` with RDEV_NATS_URL listing three nodes, RDEV_STREAM_REPLICAS=3) on a
3-node NATS cluster: a stream leader SIGKILLed mid-run, and a rolling restart of every
node while commands run. Nothing lost, nothing duplicated, no service restart loop."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.cluster.nats_cluster import NatsCluster
from tests.cluster.support import (
    SseFollower,
    counting,
    expected,
    leader_of,
    replicated,
    subject_counts,
)
from tests.e2e.sse_helpers import submit
from tests.support import BIN, RdevSystem, start_system, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

PROJECT = "clustered"
STREAMS = ("RDEV_COMMANDS", "RDEV_RUNS", "RDEV_LIFECYCLE", "RDEV_ADMIN", "RDEV_WEBHOOKS")


@pytest.fixture(scope="module")
def system(cluster: NatsCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RdevSystem]:
    yield from start_system(
        tmp_path_factory.mktemp("rdev-on-cluster"),
        RDEV_NATS_URL=cluster.url,
        RDEV_STREAM_REPLICAS="3",
    )


@pytest.fixture(scope="module")
def project(system: RdevSystem) -> str:
    system.create_project(PROJECT)
    return PROJECT


def finished(client: httpx.Client, command_id: str) -> dict | None:
    r = client.get(f"/commands/{command_id}")
    if r.status_code != 200:
        return None
    data: dict = r.json()["data"]
    return data if data.get("reason") is not None else None


def output(client: httpx.Client, command_id: str) -> list[str]:
    r = client.get(f"/commands/{command_id}/output")
    assert r.status_code == 200, r.text
    return r.text.splitlines()


def run_to_end(client: httpx.Client, command: str, timeout: float = 120) -> tuple[str, dict]:
    command_id = submit(client, PROJECT, command)
    done = wait_for(lambda: finished(client, command_id), timeout, f"{command} did not end")
    return command_id, done


def no_service_restarted(system: RdevSystem) -> None:
    restarts = [ln for ln in system.log_tail(100_000).splitlines() if "exited with" in ln]
    assert not restarts, restarts


def test_every_stream_has_three_current_replicas(
    system: RdevSystem, cluster: NatsCluster, project: str
) -> None:
    wait_for(lambda: replicated(cluster.url, STREAMS), 60, "streams not R3 and current")


@pytest.mark.parametrize("stream", ["RDEV_RUNS", "RDEV_COMMANDS"])
def test_stream_leader_killed_mid_run(
    system: RdevSystem, cluster: NatsCluster, project: str, stream: str
) -> None:
    wait_for(lambda: replicated(cluster.url, STREAMS), 60, "streams not R3 and current")
    prefix = stream.lower()
    with system.client() as client:
        command_id = submit(client, PROJECT, counting(prefix, 120))
        sse = SseFollower(lambda: system.base_url, system.headers, PROJECT, command_id).start()
        wait_for(lambda: len(output(client, command_id)) >= 10, 60, "run did not start")
        victim = cluster.node(leader_of(cluster.url, stream))
        victim.kill()
        try:
            # A new command runs while the node is down.
            during, done = run_to_end(client, "echo while-down")
            assert (done["reason"], done["exit_code"]) == ("exited", 0), done
            assert output(client, during) == ["while-down"]
            done = wait_for(lambda: finished(client, command_id), 180, "run did not end")
            assert (done["reason"], done["exit_code"]) == ("exited", 0), done
            assert output(client, command_id) == expected(prefix, 120), "each line exactly once"
            # The CLI reaches the cluster (its streams led by the survivors by now) with the
            # dead node first in its list.
            seeds = ",".join([victim.url, *(n.url for n in cluster.nodes if n is not victim)])
            cli_env = {k: v for k, v in os.environ.items() if not k.startswith("RDEV_")}
            cli = subprocess.run(
                [str(BIN / "rdev"), "events", "info", "--json"],
                env={**cli_env, "RDEV_NATS_URL": seeds},
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert cli.returncode == 0, cli.stdout + cli.stderr
            # The CLI logs the refused first seed on stdout too, before the JSON document.
            document = cli.stdout[
                cli.stdout.index("\n{") if not cli.stdout.startswith("{") else 0 :
            ]
            assert {s["name"] for s in json.loads(document)["streams"]} >= set(STREAMS)
            sse.join(120)
            assert sse.lines == expected(prefix, 120), "SSE and /output agree"
            assert sse.complete is not None and sse.complete["exit_code"] == 0
        finally:
            if not victim.alive():
                cluster.restart(victim)
        wait_for(lambda: replicated(cluster.url, STREAMS), 120, "node did not catch up")
        assert victim.monitor("/jsz")["streams"] >= len(STREAMS), "rejoined with every stream"
    no_service_restarted(system)


def test_rolling_restart_of_every_node_while_commands_run(
    system: RdevSystem, cluster: NatsCluster, project: str
) -> None:
    submitted: list[str] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def keep_submitting() -> None:
        try:
            with system.client() as client:
                n = 0
                while not stop.is_set():
                    n += 1
                    try:
                        submitted.append(submit(client, PROJECT, counting(f"r{n}", 20)))
                    except httpx.HTTPError:
                        continue  # a request lost with its connection: a client retries
                    stop.wait(0.3)
        except BaseException as exc:
            errors.append(exc)

    submitter = threading.Thread(target=keep_submitting, daemon=True)
    submitter.start()
    try:
        wait_for(lambda: len(submitted) >= 3, 60, "no command submitted")
        for node in cluster.nodes:
            wait_for(lambda: replicated(cluster.url, STREAMS), 120, "streams not current")
            node.stop()
            wait_for(lambda: len(submitted) >= 3, 10, "submissions stopped")
            before = len(submitted)
            wait_for(lambda b=before: len(submitted) >= b + 3, 60, f"no submit without {node.name}")
            cluster.restart(node)
        wait_for(lambda: replicated(cluster.url, STREAMS), 120, "streams not current at the end")
    finally:
        stop.set()
        submitter.join(30)
    assert not errors, errors
    with system.client() as client:
        for command_id in submitted:
            done = wait_for(lambda c=command_id: finished(client, c), 180, f"{command_id} open")
            assert (done["reason"], done["exit_code"]) == ("exited", 0), done
            lines = output(client, command_id)
            prefix = lines[0].split("-")[0] if lines else "?"
            assert lines == expected(prefix, 20), (command_id, lines)
    completed = subject_counts(cluster.url, "RDEV_RUNS", f"rdev.runs.{PROJECT}.*.completed")
    for command_id in submitted:
        assert completed.get(f"rdev.runs.{PROJECT}.{command_id}.completed") == 1, command_id
    no_service_restarted(system)
