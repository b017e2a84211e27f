"""Helpers of the cluster tests: stream state over NATS, a resuming SSE client, runs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from rdev_common.broker import connect


def stream_info(url: str, stream: str) -> Any:
    async def info() -> Any:
        nc = await connect(url, "cluster-test")
        try:
            return await nc.jetstream().stream_info(stream)
        finally:
            await nc.close()

    return asyncio.run(info())


def leader_of(url: str, stream: str) -> str:
    leader = stream_info(url, stream).cluster.leader
    assert leader, f"{stream} has no leader"
    return str(leader)


def replicated(url: str, streams: tuple[str, ...], replicas: int = 3) -> bool:
    """Every stream has a leader and `replicas - 1` followers, all current."""
    for stream in streams:
        try:
            info = stream_info(url, stream)
        except Exception:
            return False
        cluster = info.cluster
        if info.config.num_replicas != replicas or not cluster or not cluster.leader:
            return False
        peers = cluster.replicas or []
        if len(peers) != replicas - 1 or not all(p.current and not p.offline for p in peers):
            return False
    return True


def subject_counts(url: str, stream: str, subjects: str) -> dict[str, int]:
    """Messages per subject matching `subjects` in `stream`."""

    async def info() -> dict[str, int]:
        nc = await connect(url, "cluster-test")
        try:
            found = await nc.jetstream().stream_info(stream, subjects_filter=subjects)
            return dict(found.state.subjects or {})
        finally:
            await nc.close()

    return asyncio.run(info())


@dataclass
class SseFollower:
    """An SSE client of one run that resumes with Last-Event-ID whenever its connection
    ends before `complete`, as EventSource does; runs in a thread of its own."""

    base_url: Callable[[], str]  # asked at every (re)connection: replicas can alternate
    headers: dict[str, str]
    project: str
    command_id: str
    lines: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    complete: dict[str, Any] | None = None
    reconnects: int = 0
    error: BaseException | None = None
    thread: threading.Thread | None = None

    def start(self) -> SseFollower:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def join(self, timeout: float) -> SseFollower:
        assert self.thread is not None
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"SSE client of {self.command_id} never saw complete"
        if self.error is not None:
            raise self.error
        return self

    def _run(self) -> None:
        try:
            while self.complete is None:
                with contextlib.suppress(httpx.HTTPError):
                    self._read_once()
                if self.complete is None:
                    self.reconnects += 1
                    if self.reconnects > 200:
                        raise AssertionError(f"{self.command_id}: gave up reconnecting")
                    threading.Event().wait(0.2)
        except BaseException as exc:
            self.error = exc

    def _read_once(self) -> None:
        headers = dict(self.headers)
        if self.ids:
            headers["Last-Event-ID"] = self.ids[-1]
        url = f"{self.base_url()}/projects/{self.project}/events?stream_id={self.command_id}"
        with (
            httpx.Client(timeout=httpx.Timeout(30, read=60)) as client,
            client.stream("GET", url, headers=headers) as response,
        ):
            if response.status_code == 204:  # complete seen by an earlier connection
                raise AssertionError("204 before this client saw complete")
            if response.status_code != 200:
                return
            fields: dict[str, str] = {}
            for line in response.iter_lines():
                if line:
                    if not line.startswith(":"):
                        name, _, value = line.partition(":")
                        fields[name] = value.removeprefix(" ")
                    continue
                self._event(fields)
                fields = {}
                if self.complete is not None:
                    return

    def _event(self, fields: dict[str, str]) -> None:
        kind = fields.get("event")
        if kind is None:
            return
        if "id" in fields:
            self.ids.append(fields["id"])
        data = json.loads(fields.get("data", "null"))
        if kind == "output":
            self.lines.append(data["line"])
        elif kind == "complete":
            self.complete = data


def counting(prefix: str, lines: int, pause: float = 0.05) -> str:
    return f"for i in $(seq 1 {lines}); do echo {prefix}-$i; sleep {pause}; done"


def expected(prefix: str, lines: int) -> list[str]:
    return [f"{prefix}-{i}" for i in range(1, lines + 1)]
