"""A system of the embedded broker (each service its own NATS user), for interactive runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import RdevSystem, start_system

INPUT_MAX_BYTES = 4 * 1024 * 1024


@pytest.fixture(scope="package")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RdevSystem]:
    data: Path = tmp_path_factory.mktemp("interactive")
    yield from start_system(
        data,
        RDEV_EXECUTOR_ACK_WAIT_S="3",
        RDEV_KILL_GRACE_S="1",
        RDEV_INPUT_MAX_BYTES=str(INPUT_MAX_BYTES),
    )
