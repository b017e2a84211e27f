"""The executor's start-up check of its output limits against the broker's."""

from __future__ import annotations

import pytest

from rdev_executor.bootstrap import check_line_fits


def test_the_executor_refuses_a_line_limit_the_broker_cannot_carry() -> None:
    check_line_fits(8 * 1024, 1024 * 1024)
    with pytest.raises(SystemExit, match=r"RDEV_OUTPUT_MAX_LINE_CHARS=300000.*at most 261120"):
        check_line_fits(300_000, 1024 * 1024)
