"""Heartbeats come from the stream itself, and none follows a run's `complete`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from rdev_api.entrypoints import sse
from rdev_api.entrypoints.http.stream_guard import guarded

COMPLETE = sse.event("complete", {"exit_code": 0}, "9")


async def _run_stream(idle_s: float, cleanup_s: float) -> AsyncIterator[bytes]:
    """A run's stream: output, a pause, `complete`, then a slow clean-up (a broker
    round trip in the real one)."""
    try:
        yield sse.event("output", {"line": "a"}, "1-0")
        await asyncio.sleep(idle_s)
        yield sse.Final(COMPLETE)
    finally:
        await asyncio.sleep(cleanup_s)


async def _read(body: AsyncIterator[bytes], heartbeat_s: float) -> list[str]:
    never = 3600.0  # no key check during the test
    stream = guarded(body, None, None, never, heartbeat_s)  # type: ignore[arg-type]
    return [chunk.split(b"\n")[0].decode() async for chunk in stream]


async def test_heartbeats_while_idle_and_none_after_complete() -> None:
    got = await _read(_run_stream(idle_s=0.25, cleanup_s=0.3), heartbeat_s=0.05)
    assert got[0] == "id: 1-0" and got[-1] == "id: 9"
    beats = got[1:-1]
    assert beats and set(beats) == {"event: heartbeat"}, got


async def test_a_stream_that_never_ends_gets_heartbeats_until_the_client_leaves() -> None:
    async def silent() -> AsyncIterator[bytes]:
        await asyncio.sleep(3600)
        yield b""

    stream = guarded(silent(), None, None, 3600.0, 0.02)  # type: ignore[arg-type]
    first = [await anext(stream) for _ in range(3)]
    await stream.aclose()
    assert all(chunk.startswith(b'event: heartbeat\ndata: {"ts":') for chunk in first)
