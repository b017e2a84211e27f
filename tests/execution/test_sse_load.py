"""SSE under load: project-wide streams, heartbeats, 500 watchers, a slow client."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import httpx
import pytest

from tests.e2e.sse_helpers import events_url, read_events, submit
from tests.support import RdevSystem, service_pids, wait_for

pytestmark = pytest.mark.e2e


def test_project_stream_shows_every_command_event_and_resumes(system: RdevSystem) -> None:
    system.create_project("wide")
    with system.client() as client:
        a = submit(client, "wide", "echo from-a")
        b = submit(client, "wide", "echo from-b; exit 2")
        read_events(client, events_url("wide", a))
        read_events(client, events_url("wide", b))
        _, events = read_events(client, "/projects/wide/events", limit=9, timeout=30)
        kinds = [(e.event, e.data.get("stream_id")) for e in events[1:]]
        middle = events[4]
        _, resumed = read_events(
            client,
            "/projects/wide/events",
            limit=5,
            timeout=30,
            headers={"Last-Event-ID": middle.id or ""},
        )
    assert events[0].event == "connected"
    for cid in (a, b):
        mine = [k for k, s in kinds if s == cid]
        assert sorted(mine[:2]) == ["queued", "started"]
        assert mine[2:] == ["output", "complete"]
    assert [e.id for e in resumed[1:]] == [e.id for e in events[5:]]


def test_heartbeats_arrive_while_a_command_is_quiet(system: RdevSystem) -> None:
    system.create_project("quiet")
    with system.client() as client:
        cid = submit(client, "quiet", "sleep 3")
        _, events = read_events(client, events_url("quiet", cid))
    beats = [e for e in events if e.event == "heartbeat"]
    assert beats, "no heartbeat during a 3 s silence with RDEV_HEARTBEAT_S=1"
    assert all(isinstance(e.data["ts"], float) for e in beats)


def test_500_concurrent_watchers_all_receive_every_line(system: RdevSystem) -> None:
    system.create_project("crowd")
    watchers, total = 500, 200
    with system.client() as client:
        cid = submit(client, "crowd", f"sleep 2; seq 1 {total}")

    async def watch(http: httpx.AsyncClient) -> list[str]:
        lines: list[str] = []
        async with http.stream("GET", events_url("crowd", cid)) as response:
            assert response.status_code == 200
            event = ""
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "output":
                    lines.append(json.loads(line[6:])["line"])
                elif line.startswith("data: ") and event == "complete":
                    break
        return lines

    async def crowd() -> list[list[str]]:
        limits = httpx.Limits(max_connections=watchers + 10)
        async with httpx.AsyncClient(
            base_url=system.base_url, headers=system.headers, limits=limits, timeout=120
        ) as http:
            return await asyncio.gather(*(watch(http) for _ in range(watchers)))

    results = asyncio.run(crowd())
    expected = [str(i) for i in range(1, total + 1)]
    assert len(results) == watchers
    assert all(r == expected for r in results)


def output_line_numbers(client: httpx.Client, url: str, headers: dict[str, str]) -> list[int]:
    """The `line` of every `output` event, read as they arrive.

    Keeps ints, not an object per event: millions of live objects make the
    collector pause the reader for seconds, longer than this module's 3 s send
    timeout, and the server rightly drops a reader that stops reading.
    """
    numbers: list[int] = []
    kind = ""
    with client.stream("GET", url, headers=headers, timeout=120) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind == "output":
                numbers.append(int(json.loads(line[6:])["line"]))
    return numbers


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_stalled_client_does_not_grow_server_memory_and_can_resume(system: RdevSystem) -> None:
    system.create_project("slow")
    (api,) = service_pids(system, "api")
    with system.client() as client:
        cid = submit(client, "slow", "seq 1 3000000")
        wait_for(
            lambda: (
                client.get(f"/commands/{cid}").json().get("data", {}).get("status") == "completed"
            ),
            120,
            "command did not complete",
            interval=0.5,
        )
    before = rss_kib(api)
    # A raw socket that asks for the stream and then reads nothing.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", system.port))
    sock.sendall(
        (
            f"GET {events_url('slow', cid)} HTTP/1.1\r\nHost: x\r\n"
            f"X-API-Key: {system.api_key}\r\n\r\n"
        ).encode()
    )
    first = ""
    while "event: output" not in first and len(first) < 65536:
        first += sock.recv(4096).decode(errors="replace")
    first = first[: first.rfind("\n\n")]  # whole events only
    peak = before
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        peak = max(peak, rss_kib(api))
        time.sleep(0.2)
    sock.close()
    assert "200 OK" in first
    # The run is ≈21 MB of output and ≈180 MB of SSE text; a stalled reader may pin
    # only the read-ahead window, not the run.
    assert peak - before < 64 * 1024, f"api grew by {peak - before} KiB for a stalled client"
    ids = [line[4:] for line in first.splitlines() if line.startswith("id: ") and "-" in line]
    assert ids, f"no output event before the client stalled: {first[:500]!r}"
    last_id = ids[-1]
    with system.client() as client:
        numbers = output_line_numbers(
            client, events_url("slow", cid), headers={"Last-Event-ID": last_id}
        )
    assert numbers[-1] == 3000000
    assert numbers == list(range(numbers[0], 3000001))
