"""Rate-limit counters in JetStream, shared by every api replica.

One counter subject per (caller, policy, fixed window) in RDEV_RATELIMIT, a stream with
atomic counters (`Nats-Incr`, server 2.12+): an increment is one request/reply that
answers the new total, ≈0.3 ms on loopback. The previous window's total is read once and
remembered. A refusal is taken back, so a caller hammering a limit is not locked out longer.
The limiter fails open: an unreachable broker must not take the API down with it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson
import structlog
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from rdev_api.domain.ratelimit import Decision, RateLimitPolicy, decide, window_of
from rdev_common import subjects
from rdev_common.streams import RATE_LIMITS

log = structlog.get_logger()

REMEMBERED = 10_000


class NatsRateLimiter:
    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        clock: Callable[[], float] = time.time,
        timeout_s: float = 1.0,
    ) -> None:
        self.nc = nc
        self.js = js
        self.clock = clock
        self.timeout_s = timeout_s
        self._closed_windows: dict[str, int] = {}

    async def hit(self, bucket: str, policy: RateLimitPolicy) -> Decision:
        index, elapsed = window_of(self.clock(), policy.window_s)
        current_subject = subjects.rate_limit(bucket, policy.name, index)
        try:
            current = await self._add(current_subject, 1)
            previous = await self._closed(subjects.rate_limit(bucket, policy.name, index - 1))
            decision = decide(policy, previous, current, elapsed)
            if not decision.allowed:
                await self._add(current_subject, -1)
        except (NatsError, TimeoutError) as exc:
            log.warning("rate limiter unavailable, request allowed", error=type(exc).__name__)
            return Decision(policy, True, policy.limit, policy.window_s)
        return decision

    async def _add(self, subject: str, amount: int) -> int:
        reply = await self.nc.request(
            subject, b"", headers={"Nats-Incr": f"{amount:+d}"}, timeout=self.timeout_s
        )
        answer = orjson.loads(reply.data)
        if "error" in answer:
            raise NatsError(str(answer["error"].get("description", "counter error")))
        return int(answer["val"])

    async def _closed(self, subject: str) -> int:
        """The total of a window that has ended; remembered, so read once per process."""
        if subject in self._closed_windows:
            return self._closed_windows[subject]
        try:
            message = await self.js.get_last_msg(RATE_LIMITS, subject, direct=True)
            total = int(orjson.loads(message.data or b"{}").get("val", 0))
        except NotFoundError:
            total = 0
        if len(self._closed_windows) >= REMEMBERED:
            self._closed_windows.clear()
        self._closed_windows[subject] = total
        return total
