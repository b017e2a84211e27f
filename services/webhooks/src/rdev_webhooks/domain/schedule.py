"""The retry schedule: exponential back-off with jitter, Retry-After honoured."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

# Standard Webhooks' schedule: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
DEFAULT_SCHEDULE = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
MAX_RETRY_AFTER_S = 24 * 3600.0


def parse_schedule(text: str) -> tuple[float, ...]:
    """`"0,5,300"` → (0.0, 5.0, 300.0); at least one non-negative delay."""
    delays = tuple(float(part) for part in text.split(",") if part.strip())
    if not delays or any(d < 0 for d in delays):
        raise ValueError("a retry schedule is one or more non-negative delays in seconds")
    return delays


@dataclass(frozen=True)
class RetrySchedule:
    delays: tuple[float, ...] = DEFAULT_SCHEDULE
    jitter: float = 0.1  # ± share of each delay, so endpoints are not hit in lock-step

    @property
    def max_attempts(self) -> int:
        return len(self.delays)

    def first_delay(self) -> float:
        return self.delays[0]

    def delay_after(
        self,
        attempt: int,
        retry_after_s: float | None = None,
        rand: Callable[[], float] = random.random,
    ) -> float | None:
        """Seconds until the attempt after `attempt` (1-based), or None when none is left."""
        if attempt >= self.max_attempts:
            return None
        base = self.delays[attempt]
        delay = base * (1 + self.jitter * (2 * rand() - 1))
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, MAX_RETRY_AFTER_S))
        return delay
