"""A system on a broker the tests own, so they can restart it, with a short ack wait."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rdev_common.broker import EmbeddedNats
from tests.support import RdevSystem, start_system


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    server = EmbeddedNats(tmp_path_factory.mktemp("broker") / "nats")
    server.start()
    yield server
    server.stop(kill=True)


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory, broker: EmbeddedNats) -> Iterator[RdevSystem]:
    data: Path = tmp_path_factory.mktemp("exec-system")
    yield from start_system(
        data,
        RDEV_NATS_URL=broker.url,
        RDEV_EXECUTOR_ACK_WAIT_S="3",
        RDEV_EXECUTOR_CONCURRENCY="4",
        RDEV_KILL_GRACE_S="1",
        RDEV_PRIORITY_AGING_S="3600",
        RDEV_SSE_SEND_TIMEOUT_S="3",
        RDEV_HEARTBEAT_S="1",
        # Batches of half a MiB: one of four-byte characters, or one whose flag lists
        # pass JetStream's 64 KiB of headers, goes split (tests/execution/test_output_and_state).
        RDEV_OUTPUT_BATCH_BYTES=str(512 * 1024),
    )
