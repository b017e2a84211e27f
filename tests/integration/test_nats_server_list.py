"""RDEV_NATS_URL takes a comma-separated list of servers (the NATS convention) everywhere:
the settings, every service under `rdev up`, the operators' CLI and the client itself."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from rdev_common.broker import EmbeddedNats, connect, free_port, nats_server_binary, server_list
from rdev_common.settings import CommonSettings
from tests.audit.support import rdev_cli
from tests.e2e.sse_helpers import events_url, read_events, submit
from tests.support import RdevSystem, port_open, start_system, wait_for


def test_a_list_is_split_trimmed_and_checked() -> None:
    assert server_list("nats://a:4222") == ["nats://a:4222"]
    assert server_list(" nats://a:4222 , tls://b:4223,c:4224") == [
        "nats://a:4222",
        "tls://b:4223",
        "c:4224",
    ]
    settings = CommonSettings(nats_url="nats://a:1,nats://b:2")
    assert settings.require_nats_url() == "nats://a:1,nats://b:2"
    assert CommonSettings(nats_url=" ").nats_url is None
    for bad, says in [
        ("nats://a:1,,nats://b:2", "empty server"),
        ("nats://a:1,", "empty server"),
        ("http://a:1", "not a nats://"),
        ("nats://a:port", "not a server URL"),
        ("nats://a:1,ws://b:2", "mixes websocket"),
    ]:
        with pytest.raises(ValidationError, match=f"RDEV_NATS_URL.*{says}|{says}.*") as info:
            CommonSettings(nats_url=bad)
        assert "RDEV_NATS_URL" in str(info.value)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[list[tuple[str, subprocess.Popen[bytes]]]]:
    """Two nats-servers routed into one cluster on loopback."""
    ports = [free_port() for _ in range(2)]
    routes = [free_port() for _ in range(2)]
    procs = []
    for i in range(2):
        conf = tmp_path / f"n{i}.conf"
        conf.write_text(
            f'server_name: "n{i}"\nlisten: "127.0.0.1:{ports[i]}"\n'
            f'cluster {{ name: "c"; listen: "127.0.0.1:{routes[i]}"; '
            f'routes: ["nats-route://127.0.0.1:{routes[1 - i]}"] }}\n'
        )
        procs.append(
            subprocess.Popen(
                [nats_server_binary(), "-c", str(conf)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    servers = [(f"nats://127.0.0.1:{port}", proc) for port, proc in zip(ports, procs, strict=True)]
    try:
        for url, _ in servers:
            wait_for(lambda u=url: port_open("127.0.0.1", int(u.rsplit(":", 1)[1])), 20, url)
        yield servers
    finally:
        for _, proc in servers:
            proc.kill()
            proc.wait()


async def test_the_client_moves_to_another_server_of_the_list(pair) -> None:
    """Connected through a list, a client that loses its server carries on through the other."""
    urls = [url for url, _ in pair]
    listener = await connect(urls[1], "listener")
    talker = await connect(",".join(urls), "talker")
    try:
        got: asyncio.Queue[bytes] = asyncio.Queue()

        async def on_message(msg) -> None:  # type: ignore[no-untyped-def]
            await got.put(msg.data)

        await listener.subscribe("list.test", cb=on_message)
        await listener.flush()

        async def delivered(payload: bytes) -> None:
            # Routes settle in their own time: publish until the other side hears it.
            while True:
                await talker.publish("list.test", payload)
                try:
                    if await asyncio.wait_for(got.get(), 0.5) == payload:
                        return
                except TimeoutError:
                    pass

        await asyncio.wait_for(delivered(b"before"), 30)
        connected = f"nats://127.0.0.1:{talker.connected_url.port}"
        (_, proc) = next(p for p in pair if p[0] == connected)
        proc.kill()
        proc.wait()
        await asyncio.wait_for(delivered(b"after"), 30)
        assert talker.is_connected
    finally:
        await talker.close()
        await listener.close()


@pytest.fixture(scope="module")
def listed_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RdevSystem]:
    """The whole system on a list whose first server is down."""
    server = EmbeddedNats(tmp_path_factory.mktemp("listed-broker") / "nats")
    server.start()
    down = f"nats://127.0.0.1:{free_port()}"
    try:
        yield from start_system(
            tmp_path_factory.mktemp("listed-system"), RDEV_NATS_URL=f"{down}, {server.url}"
        )
    finally:
        server.stop(kill=True)


@pytest.mark.e2e
def test_every_service_and_the_cli_take_a_list_whose_first_server_is_down(
    listed_system: RdevSystem,
) -> None:
    system = listed_system
    system.create_project("listed")
    with system.client() as client:
        cid = submit(client, "listed", "echo one; echo two")
        _, events = read_events(client, events_url("listed", cid), timeout=120)
    assert [e.data["line"] for e in events if e.event == "output"] == ["one", "two"]
    assert events[-1].data["exit_code"] == 0
    # The audit service (on the same list) stores the run.
    with system.client() as client:
        wait_for(
            lambda: client.get("/audit", params={"project": "listed"}).json()["data"],
            120,
            "no audit rows for the project",
        )
    # The operators' CLI, on the same list.
    info = rdev_cli(system.env, "events", "info", "--json")
    assert info.returncode == 0, info.stderr
    streams = {s["name"]: s for s in json.loads(info.stdout)["streams"]}
    assert streams["RDEV_RUNS"]["last_seq"] >= 4
