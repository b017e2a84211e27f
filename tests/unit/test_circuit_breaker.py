"""Circuit breaker state machine, driven with a fake clock (no sleeps)."""

from __future__ import annotations

import asyncio

import pytest

from rdev_common.circuit_breaker import (
    BreakerPolicy,
    CircuitBreaker,
    CircuitOpen,
    State,
    StateChange,
)
from rdev_common.errors import Unavailable


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def state_of(breaker: CircuitBreaker) -> State:
    # A call, so the type checker does not narrow the state across awaits.
    return breaker.state


class Boom(Exception):
    pass


def make(
    clock: FakeClock, changes: list[StateChange] | None = None, **policy: float
) -> CircuitBreaker:
    defaults: dict[str, float] = {
        "failure_threshold": 3,
        "failure_rate": 0.5,
        "window_s": 10,
        "min_calls": 6,
        "cooldown_s": 5,
    }
    defaults.update(policy)
    return CircuitBreaker(
        "k8s",
        BreakerPolicy(**defaults),  # type: ignore[arg-type]
        clock=clock,
        on_state_change=changes.append if changes is not None else None,
    )


async def ok() -> str:
    return "ok"


async def fail() -> str:
    raise Boom("down")


async def fail_n(breaker: CircuitBreaker, n: int) -> None:
    for _ in range(n):
        with pytest.raises(Boom):
            await breaker.call(fail)


async def test_consecutive_failures_open_and_calls_fail_fast() -> None:
    clock, changes = FakeClock(), list[StateChange]()
    breaker = make(clock, changes)
    await fail_n(breaker, 2)
    assert state_of(breaker) is State.CLOSED
    await fail_n(breaker, 1)
    assert state_of(breaker) is State.OPEN
    called = False

    async def spy() -> None:
        nonlocal called
        called = True

    with pytest.raises(CircuitOpen) as info:
        await breaker.call(spy)
    assert not called, "an open circuit must not call the dependency"
    assert isinstance(info.value, Unavailable)
    assert "k8s is unavailable" in str(info.value)
    assert info.value.retry_after_s == pytest.approx(5)
    assert [(c.old, c.new) for c in changes] == [(State.CLOSED, State.OPEN)]
    assert "3 consecutive failures" in changes[0].reason


async def test_success_resets_the_consecutive_count() -> None:
    breaker = make(FakeClock(), min_calls=100)
    for _ in range(5):
        await fail_n(breaker, 2)
        assert await breaker.call(ok) == "ok"
    assert state_of(breaker) is State.CLOSED


async def test_failure_rate_in_window_opens() -> None:
    clock = FakeClock()
    breaker = make(clock, failure_threshold=100)
    for _ in range(2):
        await breaker.call(ok)
        await fail_n(breaker, 1)
        await breaker.call(ok)
    assert state_of(breaker) is State.CLOSED  # 2 of 6 failed
    await fail_n(breaker, 1)
    await breaker.call(ok)
    await fail_n(breaker, 1)  # 4 of 9 -> still below 0.5
    assert state_of(breaker) is State.CLOSED
    await fail_n(breaker, 1)  # 5 of 10
    assert state_of(breaker) is State.OPEN


async def test_old_failures_leave_the_window() -> None:
    clock = FakeClock()
    breaker = make(clock, failure_threshold=100)
    await fail_n(breaker, 5)
    clock.now += 11
    for _ in range(6):
        await breaker.call(ok)
    await fail_n(breaker, 1)
    assert state_of(breaker) is State.CLOSED


async def test_half_open_probe_success_closes() -> None:
    clock, changes = FakeClock(), list[StateChange]()
    breaker = make(clock, changes)
    await fail_n(breaker, 3)
    clock.now += 4.9
    with pytest.raises(CircuitOpen):
        await breaker.call(ok)
    clock.now += 0.2
    assert state_of(breaker) is State.HALF_OPEN
    assert await breaker.call(ok) == "ok"
    assert state_of(breaker) is State.CLOSED
    assert [c.new for c in changes] == [State.OPEN, State.HALF_OPEN, State.CLOSED]


async def test_half_open_probe_failure_reopens_for_a_new_cooldown() -> None:
    clock = FakeClock()
    breaker = make(clock)
    await fail_n(breaker, 3)
    clock.now += 5
    await fail_n(breaker, 1)
    assert state_of(breaker) is State.OPEN
    clock.now += 4
    with pytest.raises(CircuitOpen):
        await breaker.call(ok)
    clock.now += 1
    assert await breaker.call(ok) == "ok"


async def test_half_open_admits_exactly_one_probe() -> None:
    clock = FakeClock()
    breaker = make(clock)
    await fail_n(breaker, 3)
    clock.now += 5
    release = asyncio.Event()

    async def slow() -> str:
        await release.wait()
        return "probe"

    probe = asyncio.create_task(breaker.call(slow))
    await asyncio.sleep(0)  # let the probe enter the breaker
    with pytest.raises(CircuitOpen):
        await breaker.call(ok)
    release.set()
    assert await probe == "probe"
    assert state_of(breaker) is State.CLOSED


async def test_cancelled_probe_frees_the_slot_without_verdict() -> None:
    clock = FakeClock()
    breaker = make(clock)
    await fail_n(breaker, 3)
    clock.now += 5
    probe = asyncio.create_task(breaker.call(asyncio.Event().wait))
    await asyncio.sleep(0)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert state_of(breaker) is State.HALF_OPEN
    assert await breaker.call(ok) == "ok"
    assert state_of(breaker) is State.CLOSED


async def test_errors_that_are_not_failures_do_not_count() -> None:
    breaker = CircuitBreaker(
        "k8s",
        BreakerPolicy(failure_threshold=1),
        clock=FakeClock(),
        is_failure=lambda exc: not isinstance(exc, KeyError),
    )
    for _ in range(3):
        with pytest.raises(KeyError):
            async with breaker:
                raise KeyError("not found")
    assert state_of(breaker) is State.CLOSED
    with pytest.raises(Boom):
        async with breaker:
            raise Boom()
    assert state_of(breaker) is State.OPEN


async def test_manual_api_for_calls_that_are_not_one_await() -> None:
    breaker = make(FakeClock())
    for _ in range(3):
        breaker.before_call()
        breaker.record_failure()
    with pytest.raises(CircuitOpen):
        breaker.before_call()
