"""The executor's pull order, with no broker: priority first, ageing overrides it."""

from __future__ import annotations

from rdev_common.events import Priority
from rdev_executor.domain.scheduling import ORDER, aged, pull_order

HIGH, NORMAL, LOW = Priority.HIGH, Priority.NORMAL, Priority.LOW


def test_without_ageing_queues_are_pulled_high_normal_low() -> None:
    assert pull_order({LOW, HIGH, NORMAL}, []) == [HIGH, NORMAL, LOW]
    assert pull_order({LOW, NORMAL}, []) == [NORMAL, LOW]
    assert pull_order(set(), []) == []


def test_a_queue_that_waited_past_the_limit_goes_first_longest_first() -> None:
    first = aged({NORMAL: 45.0, LOW: 90.0}, aging_s=30.0)
    assert first == [LOW, NORMAL]
    assert pull_order(set(ORDER), first) == [LOW, NORMAL, HIGH]


def test_only_queues_over_the_limit_age_and_only_candidates_are_pulled() -> None:
    first = aged({NORMAL: 10.0, LOW: 31.0}, aging_s=30.0)
    assert first == [LOW]
    assert pull_order({HIGH, NORMAL, LOW}, first) == [LOW, HIGH, NORMAL]
    assert pull_order({HIGH}, first) == [HIGH]  # an aged queue known empty is not pulled
