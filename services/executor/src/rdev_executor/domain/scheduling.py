"""Which command queue to pull from first: priority, with ageing. Standard library only.

High before normal before low, except that a normal or low queue whose oldest command
has waited longer than the ageing limit goes first (the longest-waiting first), so a
steady stream of high-priority work cannot starve the others.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from rdev_common.events import Priority

ORDER = (Priority.HIGH, Priority.NORMAL, Priority.LOW)
AGEABLE = (Priority.NORMAL, Priority.LOW)  # high goes first anyway


def aged(waits: Mapping[Priority, float], aging_s: float) -> list[Priority]:
    """The queues whose oldest command waited longer than `aging_s`, longest first."""
    over = [p for p, waited in waits.items() if waited > aging_s]
    return sorted(over, key=lambda p: -waits[p])


def pull_order(candidates: Collection[Priority], aged_first: list[Priority]) -> list[Priority]:
    """The `candidates` (queues that may hold commands) in the order to pull them."""
    order = [*aged_first, *(p for p in ORDER if p not in aged_first)]
    return [p for p in order if p in candidates]
