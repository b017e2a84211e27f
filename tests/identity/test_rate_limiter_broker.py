"""The JetStream rate limiter: one count across limiter instances, refusals taken back,
closed windows read from the broker, and open when the broker is away."""

from __future__ import annotations

from rdev_api.adapters.nats_rate_limiter import NatsRateLimiter
from rdev_api.domain.ratelimit import RateLimitPolicy
from rdev_common.broker import EmbeddedNats, connect
from rdev_common.settings import CommonSettings
from rdev_common.streams import ensure_rate_limit_stream

POLICY = RateLimitPolicy("requests", 5, 60)


async def limiters(url: str, clock: list[float]) -> tuple[NatsRateLimiter, NatsRateLimiter]:
    made = []
    for name in ("replica-a", "replica-b"):
        nc = await connect(url, name)
        js = nc.jetstream()
        await ensure_rate_limit_stream(js, CommonSettings())
        made.append(NatsRateLimiter(nc, js, clock=lambda: clock[0], timeout_s=0.5))
    return made[0], made[1]


async def test_two_limiters_share_one_sliding_window(nats_server: EmbeddedNats) -> None:
    clock = [6000.0]  # the start of a 60 s window
    a, b = await limiters(nats_server.url, clock)
    decisions = [await (a if i % 2 else b).hit("key-1", POLICY) for i in range(5)]
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0]
    refused = await a.hit("key-1", POLICY)
    assert not refused.allowed and refused.retry_after_s > 60
    assert not (await b.hit("key-1", POLICY)).allowed, "refusals are not counted"
    assert (await b.hit("key-2", POLICY)).allowed, "another key has its own count"
    clock[0] += 60 + 0.5 * 60  # half-way into the next window: 5 * 0.5 = 2.5 still count
    fresh = NatsRateLimiter(b.nc, b.js, clock=lambda: clock[0])  # reads the closed window
    assert [(await fresh.hit("key-1", POLICY)).allowed for _ in range(3)] == [True, True, False]


async def test_the_limiter_lets_requests_through_when_the_broker_is_away(
    nats_server: EmbeddedNats,
) -> None:
    clock = [6000.0]
    a, _ = await limiters(nats_server.url, clock)
    nats_server.stop(kill=True)
    decision = await a.hit("key-1", POLICY)
    assert decision.allowed and decision.remaining == POLICY.limit
