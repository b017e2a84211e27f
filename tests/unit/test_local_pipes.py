"""The local backend's pipe size stays within a quarter of the user's pipe allowance."""

from __future__ import annotations

import pytest

from rdev_executor.adapters.local_backend import DEFAULT_PIPE_SIZE, MAX_PIPE_SIZE, pipe_size_for

MiB = 1024 * 1024


@pytest.mark.parametrize(
    ("concurrency", "allowance", "size"),
    [
        (8, 64 * MiB, MAX_PIPE_SIZE),  # Linux's default allowance: 8 runs take 8 of 64 MiB
        (16, 64 * MiB, MAX_PIPE_SIZE),
        (32, 64 * MiB, MAX_PIPE_SIZE // 2),
        (64, 64 * MiB, MAX_PIPE_SIZE // 4),
        (10_000, 64 * MiB, DEFAULT_PIPE_SIZE),  # never below the kernel's default
        (1_000, 0, MAX_PIPE_SIZE),  # 0: no allowance set
    ],
)
def test_pipe_size(concurrency: int, allowance: int, size: int) -> None:
    assert pipe_size_for(concurrency, allowance) == size
    if allowance and size > DEFAULT_PIPE_SIZE:
        assert size * concurrency <= allowance // 4
