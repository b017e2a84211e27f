"""Sliding-window rate limits: the policy and the arithmetic, no I/O.

The sliding window is approximated by two fixed windows: the count of the current window
plus the previous window's count weighted by how much of it still overlaps the sliding
window. Two counters per (caller, policy) are all a shared store has to keep.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class RateLimitPolicy:
    name: str
    limit: int
    window_s: int

    def header(self) -> str:
        """This policy as an item of the IETF draft `RateLimit-Policy` field."""
        return f'"{self.name}";q={self.limit};w={self.window_s}'


@dataclass(frozen=True)
class Decision:
    policy: RateLimitPolicy
    allowed: bool
    remaining: int
    reset_s: int
    retry_after_s: int = 0

    def header(self) -> str:
        """This decision as an item of the IETF draft `RateLimit` field."""
        return f'"{self.policy.name}";r={self.remaining};t={self.reset_s}'


def window_of(now: float, window_s: int) -> tuple[int, float]:
    """The fixed window `now` falls in, and how far into it (0..1)."""
    index = int(now // window_s)
    return index, (now - index * window_s) / window_s


def weighted(previous: int, current: int, elapsed: float) -> float:
    return previous * (1.0 - elapsed) + current


def decide(policy: RateLimitPolicy, previous: int, current: int, elapsed: float) -> Decision:
    """`current` already counts this request."""
    used = weighted(previous, current, elapsed)
    to_window_end = max(1, math.ceil((1.0 - elapsed) * policy.window_s))
    if used <= policy.limit:
        remaining = max(0, math.floor(policy.limit - used))
        return Decision(policy, True, remaining, to_window_end)
    retry = _retry_after(policy, previous, current - 1, elapsed)
    return Decision(policy, False, 0, retry, retry)


def _retry_after(policy: RateLimitPolicy, previous: int, current: int, elapsed: float) -> int:
    """Seconds until one more request fits, if nobody else sends any."""
    room = policy.limit - 1
    if current <= room and previous > 0:
        # Still in this window: wait for enough of the previous window to slide out.
        fraction = 1.0 - (room - current) / previous
        return max(1, math.ceil((fraction - elapsed) * policy.window_s))
    # Next window: this window's count becomes the weighted "previous".
    into_next = 1.0 - room / current if current > 0 else 0.0
    return max(1, math.ceil((1.0 - elapsed + max(0.0, into_next)) * policy.window_s))
