"""An async circuit breaker: stop calling a dependency that keeps failing.

closed     calls pass; failures are counted. N consecutive failures, or a
           failure rate at or above the threshold over a sliding window (once
           enough calls were seen), open the circuit.
open       calls fail fast with `CircuitOpen` until the cool-down has passed.
half_open  exactly one probe call is let through; its success closes the
           circuit, its failure opens it again for another cool-down. Other
           calls fail fast while the probe is in flight.

Use it as `async with breaker: ...` or `await breaker.call(fn, ...)`. A
cancelled call counts as neither success nor failure. The clock is injectable
so tests need no sleeps.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import ParamSpec, TypeVar

from rdev_common.errors import Unavailable

P = ParamSpec("P")
T = TypeVar("T")


class State(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class StateChange:
    """Passed to the `on_state_change` callback (metrics, events, logs)."""

    name: str
    old: State
    new: State
    reason: str


class CircuitOpen(Unavailable):
    """Raised instead of calling the dependency while the circuit is open."""

    code = "circuit_open"

    def __init__(self, name: str, retry_after_s: float) -> None:
        super().__init__(
            f"{name} is unavailable: circuit open after repeated failures, "
            f"retrying in {retry_after_s:.1f}s",
            breaker=name,
            retry_after_s=round(retry_after_s, 3),
        )
        self.breaker = name
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class BreakerPolicy:
    failure_threshold: int = 5  # consecutive failures that open the circuit
    failure_rate: float = 0.5  # failure share in the window that opens it
    window_s: float = 30.0
    min_calls: int = 10  # calls in the window before the rate counts
    cooldown_s: float = 15.0


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        policy: BreakerPolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_state_change: Callable[[StateChange], None] | None = None,
        is_failure: Callable[[BaseException], bool] = lambda exc: True,
    ) -> None:
        self.name = name
        self.policy = policy or BreakerPolicy()
        self._clock = clock
        self._on_state_change = on_state_change
        self._is_failure = is_failure
        self._state = State.CLOSED
        self._consecutive = 0
        self._window: deque[tuple[float, bool]] = deque()
        self._opened_at = 0.0
        self._probe_in_flight = False

    @property
    def state(self) -> State:
        """The current state; an expired cool-down reads as half-open."""
        if self._state is State.OPEN and self._cooldown_left() <= 0:
            return State.HALF_OPEN
        return self._state

    def before_call(self) -> None:
        """Admit a call or raise `CircuitOpen`; pair it with one `record_*`."""
        if self._state is State.OPEN:
            left = self._cooldown_left()
            if left > 0:
                raise CircuitOpen(self.name, left)
            self._transition(State.HALF_OPEN, "cool-down over")
        if self._state is State.HALF_OPEN:
            if self._probe_in_flight:
                raise CircuitOpen(self.name, self.policy.cooldown_s)
            self._probe_in_flight = True

    def record_success(self) -> None:
        self._probe_in_flight = False
        self._consecutive = 0
        self._remember(ok=True)
        if self._state is State.HALF_OPEN:
            self._window.clear()
            self._transition(State.CLOSED, "probe succeeded")

    def record_failure(self) -> None:
        self._probe_in_flight = False
        self._consecutive += 1
        self._remember(ok=False)
        if self._state is State.HALF_OPEN:
            self._open("probe failed")
        elif self._state is State.CLOSED:
            if self._consecutive >= self.policy.failure_threshold:
                self._open(f"{self._consecutive} consecutive failures")
            elif self._rate_exceeded():
                self._open("failure rate over threshold")

    def record_cancelled(self) -> None:
        """A call ended without a verdict: free the probe slot, count nothing."""
        self._probe_in_flight = False

    async def call(self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        async with self:
            return await fn(*args, **kwargs)

    async def __aenter__(self) -> CircuitBreaker:
        self.before_call()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.record_success()
        elif not isinstance(exc, Exception) or not self._is_failure(exc):
            # Cancellation, or an error that says nothing about the
            # dependency's health (e.g. a 404): no verdict.
            self.record_cancelled()
        else:
            self.record_failure()

    def _cooldown_left(self) -> float:
        return self._opened_at + self.policy.cooldown_s - self._clock()

    def _remember(self, *, ok: bool) -> None:
        now = self._clock()
        self._window.append((now, ok))
        while self._window and self._window[0][0] < now - self.policy.window_s:
            self._window.popleft()

    def _rate_exceeded(self) -> bool:
        if len(self._window) < self.policy.min_calls:
            return False
        failures = sum(1 for _, ok in self._window if not ok)
        return failures / len(self._window) >= self.policy.failure_rate

    def _open(self, reason: str) -> None:
        self._opened_at = self._clock()
        self._transition(State.OPEN, reason)

    def _transition(self, new: State, reason: str) -> None:
        old, self._state = self._state, new
        if old is not new and self._on_state_change is not None:
            self._on_state_change(StateChange(self.name, old, new, reason))
