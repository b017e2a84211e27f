"""The dispatcher with in-memory fakes: lanes isolate endpoints, an open breaker spends nothing."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

from rdev_common.circuit_breaker import BreakerPolicy, State
from rdev_common.webhook_events import DeliveryAttempted
from rdev_webhooks.domain.model import AttemptResult, Claim, Delivery, Endpoint
from rdev_webhooks.domain.schedule import RetrySchedule
from rdev_webhooks.service_layer.attempt import AttemptContext, Policy
from rdev_webhooks.service_layer.dispatcher import Dispatcher
from rdev_webhooks.service_layer.ports import Recorded
from tests.support import wait_for_async

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class FakeStore:
    """Deliveries `<webhook>-<n>`, all due; claims and results are remembered."""

    due: dict[str, list[str]]
    claims: list[tuple[str, int]] = field(default_factory=list)
    results: dict[str, AttemptResult] = field(default_factory=dict)
    deferred: list[str] = field(default_factory=list)

    async def due_endpoints(self, now: datetime) -> list[str]:
        return [w for w, ids in self.due.items() if ids]

    async def due_deliveries(
        self, webhook_id: str, now: datetime, exclude: set[str], limit: int
    ) -> list[str]:
        return [d for d in self.due[webhook_id] if d not in exclude][:limit]

    async def defer(self, delivery_id: str, until: datetime) -> None:
        self.deferred.append(delivery_id)

    async def claim(
        self, delivery_id: str, now: datetime, lease_until: datetime, max_attempts: int
    ) -> Claim | None:
        webhook = delivery_id.split("-")[0]
        if delivery_id not in self.due[webhook]:
            return None
        self.due[webhook].remove(delivery_id)
        n = sum(1 for d, _ in self.claims if d == delivery_id) + 1
        self.claims.append((delivery_id, n))
        endpoint = Endpoint(webhook, "p", f"http://{webhook}/", ["*"], ["s"], True)
        return Claim(Delivery(delivery_id, webhook, "e", "t", "{}", n), endpoint, n)

    async def record(
        self,
        delivery: Delivery,
        attempt: int,
        result: AttemptResult,
        next_attempt_at: datetime | None,
        now: datetime,
        disable_after_s: float,
        event: DeliveryAttempted,
    ) -> Recorded:
        self.results[delivery.id] = result
        return Recorded(disabled_reason=None)


class FakeSender:
    """`slow` never answers until released; `down` fails at once; others succeed."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def send(self, endpoint: Endpoint, delivery: Delivery, attempt: int) -> AttemptResult:
        if endpoint.id == "slow":
            await self.release.wait()
        if endpoint.id == "down":
            return AttemptResult(status_code=None, duration_ms=1, error="refused")
        return AttemptResult(status_code=200, duration_ms=1)


def _dispatcher(store: FakeStore, sender: FakeSender, policy: BreakerPolicy) -> Dispatcher:
    ctx = AttemptContext(
        store,  # type: ignore[arg-type]
        sender,
        lambda: NOW,
        Policy(RetrySchedule((0, 1, 1)), timeout_s=15, disable_after_s=1e9),
    )
    return Dispatcher(ctx, policy, concurrency=2, poll_interval_s=0.01)


async def test_a_hanging_endpoint_leaves_other_lanes_free() -> None:
    store = FakeStore(
        {"slow": [f"slow-{i}" for i in range(10)], "fast": [f"fast-{i}" for i in range(10)]}
    )
    sender = FakeSender()
    dispatcher = _dispatcher(store, sender, BreakerPolicy())
    task = asyncio.create_task(dispatcher.run())
    try:
        await wait_for_async(lambda: len(store.results) == 10, 10, "the healthy lane should finish")
        assert all(d.startswith("fast") for d in store.results)
        # The hanging lane holds exactly its two workers' requests open.
        assert sorted(d for d, _ in store.claims if d.startswith("slow")) == ["slow-0", "slow-1"]
    finally:
        sender.release.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_an_open_breaker_spends_no_attempts() -> None:
    store = FakeStore({"down": [f"down-{i}" for i in range(20)]})
    policy = BreakerPolicy(failure_threshold=3, cooldown_s=3600)
    dispatcher = _dispatcher(store, FakeSender(), policy)
    task = asyncio.create_task(dispatcher.run())
    try:
        await wait_for_async(
            lambda: (
                "down" in dispatcher.lanes and dispatcher.lanes["down"].breaker.state is State.OPEN
            ),
            10,
            "three failures should open the breaker",
        )
        await wait_for_async(
            lambda: not dispatcher.lanes["down"].in_flight, 10, "lane should drain"
        )
        spent = len(store.claims)
        assert 3 <= spent <= 4  # the second worker may have claimed before the third failure
        for _ in range(20):  # scheduling rounds while the breaker is open claim nothing
            await dispatcher.schedule_due()
        assert len(store.claims) == spent and len(store.results) == spent
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class ComingBack(FakeStore):
    """Honours `defer` on the real clock, and notes the breaker's state at each one."""

    def __init__(self, due: dict[str, list[str]]) -> None:
        super().__init__(due)
        self.until: dict[str, datetime] = {}
        self.breaker_state: object = lambda: None
        self.deferred_in: list[State] = []

    async def due_deliveries(
        self, webhook_id: str, now: datetime, exclude: set[str], limit: int
    ) -> list[str]:
        ready = [d for d in self.due[webhook_id] if self.until.get(d, now) <= now]
        return [d for d in ready if d not in exclude][:limit]

    async def defer(self, delivery_id: str, until: datetime) -> None:
        self.until[delivery_id] = until
        self.deferred_in.append(self.breaker_state())  # type: ignore[operator]

    async def record(
        self, delivery: Delivery, attempt: int, result: AttemptResult, *_: object
    ) -> Recorded:  # type: ignore[override]
        if not result.succeeded:  # due again at once: the breaker alone holds it back
            self.due[delivery.webhook_id].append(delivery.id)
        return await super().record(delivery, attempt, result, *_)  # type: ignore[arg-type]


class Receiver:
    """Refuses until `up`; every request takes a little while, as over a network."""

    def __init__(self) -> None:
        self.up = False

    async def send(self, endpoint: Endpoint, delivery: Delivery, attempt: int) -> AttemptResult:
        await asyncio.sleep(0.02)
        if not self.up:
            return AttemptResult(status_code=None, duration_ms=20, error="refused")
        return AttemptResult(status_code=200, duration_ms=20)


async def test_a_receiver_that_came_back_gets_one_probe_then_the_whole_backlog() -> None:
    """After the cool-down one probe goes out; while it is in flight nothing else is sent
    or pushed back by a further cool-down, and its success releases the backlog at once."""
    store = ComingBack({"back": [f"back-{i}" for i in range(20)]})
    receiver = Receiver()
    ctx = AttemptContext(
        store,  # type: ignore[arg-type]
        receiver,
        lambda: datetime.now(UTC),
        Policy(RetrySchedule((0, 0, 0, 0, 0)), timeout_s=15, disable_after_s=1e9),
    )
    policy = BreakerPolicy(failure_threshold=3, cooldown_s=0.5)
    dispatcher = Dispatcher(ctx, policy, concurrency=4, poll_interval_s=0.05)
    store.breaker_state = lambda: dispatcher.lanes["back"].breaker.state
    task = asyncio.create_task(dispatcher.run())
    try:
        await wait_for_async(
            lambda: (
                "back" in dispatcher.lanes and dispatcher.lanes["back"].breaker.state is State.OPEN
            ),
            10,
            "three failures should open the breaker",
        )
        receiver.up = True
        await wait_for_async(
            lambda: sum(r.succeeded for r in store.results.values()) == 20,
            30,
            lambda: _said(f"{len(store.results)} results, deferred in {store.deferred_in}"),
        )
        assert State.HALF_OPEN not in store.deferred_in, store.deferred_in
        assert dispatcher.lanes["back"].breaker.state is State.CLOSED
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _said(text: str) -> str:
    return text
