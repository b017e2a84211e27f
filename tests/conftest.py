"""Fixtures shared by the whole suite: real brokers, real databases, the real system."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from rdev_common.broker import EmbeddedNats
from rdev_common.telemetry import configure_telemetry
from tests.postgres import throwaway_database
from tests.support import RdevSystem, start_system


@pytest.fixture(scope="session", autouse=True)
async def _end_leftover_tasks() -> AsyncIterator[None]:
    """End the session loop's leftover tasks while it still runs, cancelling each until it
    is done. A broker client left open to a server its test stopped retries for ever, and
    its reconnect loop can lose one cancellation (Python 3.11's `asyncio.wait_for` drops
    a cancel that races its inner future): the loop's single cancel at shutdown then
    waits until pytest-timeout fails whatever test the worker runs last."""
    yield
    current = asyncio.current_task()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        left = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        if not left:
            return
        for task in left:
            task.cancel()
        await asyncio.sleep(0.1)


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    """A fresh nats-server with JetStream for one test; stop()/start() restart it on its port."""
    server = EmbeddedNats(tmp_path / "nats")
    server.start()
    yield server
    server.stop(kill=True)


@pytest.fixture(scope="session")
def rdev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RdevSystem]:
    """The whole system, as `rdev up` starts it, shared by the tests of a session."""
    yield from start_system(tmp_path_factory.mktemp("rdev-system"))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for the session, dropped afterwards."""
    with throwaway_database() as url:
        yield url


@pytest.fixture
async def nats_client(nats_server: EmbeddedNats) -> AsyncIterator[object]:
    from rdev_common.broker import connect

    nc = await connect(nats_server.url, "test")
    yield nc
    await nc.close()


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    """The spans this process ends, from here on in the module (a processor of the
    process's one tracer provider)."""
    provider = configure_telemetry("tests")
    if provider is None:
        pytest.skip("OTEL_SDK_DISABLED is set: no spans to look at")
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return memory


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Show how each test that passed on its rerun failed the first time: a flaky test
    is a bug to find, and its first failure is the only evidence. With RDEV_RERUNS_FILE
    set (as .ci/run does), the rerun tests are also written there, one a line: CI fails
    on any of them."""
    passed = {r.nodeid for r in terminalreporter.stats.get("passed", [])}
    shown: set[str] = set()
    for report in terminalreporter.stats.get("rerun", []):
        if report.nodeid in passed and report.nodeid not in shown:
            shown.add(report.nodeid)
            terminalreporter.write_sep("-", f"first failure of {report.nodeid}, passed on rerun")
            terminalreporter.write_line(str(report.longrepr)[-4000:])
    reruns_file = os.environ.get("RDEV_RERUNS_FILE")
    if reruns_file:
        rerun = dict.fromkeys(r.nodeid for r in terminalreporter.stats.get("rerun", []))
        Path(reruns_file).write_text("".join(f"{nodeid}\n" for nodeid in rerun))
