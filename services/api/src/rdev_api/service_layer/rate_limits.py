"""Rate limiting use cases: per key (all requests, and command submission), and failed
authentication per client IP."""

from __future__ import annotations

import re
import time

from rdev_api.domain.model import ApiKey
from rdev_api.domain.ratelimit import Decision, RateLimitPolicy
from rdev_api.service_layer.ports import RateLimiter
from rdev_common.errors import RateLimited

UNSAFE_TOKEN = re.compile(r"[^A-Za-z0-9_-]")


def policies_for(
    key: ApiKey, defaults: dict[str, RateLimitPolicy], submitting: bool
) -> list[RateLimitPolicy]:
    """The key's own policies where it has them, the defaults otherwise."""
    names = ["requests", "submit"] if submitting else ["requests"]
    return [key.rate_limits.get(name, defaults[name]) for name in names]


def _refuse(refused: Decision, what: str) -> RateLimited:
    return RateLimited(
        f"rate limit exceeded ({what}: {refused.policy.limit} per {refused.policy.window_s} s); "
        f"retry in {refused.retry_after_s} s",
        retry_after_s=refused.retry_after_s,
        policy=refused.policy.name,
    )


async def count_key(
    limiter: RateLimiter, key: ApiKey, policies: list[RateLimitPolicy]
) -> list[Decision]:
    """Count one request of `key` against every policy."""
    return [await limiter.hit(key.id, policy) for policy in policies]


def enforce(decisions: list[Decision]) -> None:
    """RateLimited when one of the policies is exhausted."""
    refused = next((d for d in decisions if not d.allowed), None)
    if refused is not None:
        raise _refuse(refused, refused.policy.name)


def ip_bucket(client_ip: str | None) -> str:
    return "ip-" + UNSAFE_TOKEN.sub("_", client_ip or "unknown")


def refuse_if_blocked(blocked: dict[str, float], client_ip: str | None) -> None:
    """Refuse at once, without looking at the key, while this IP is over its failure limit."""
    until = blocked.get(client_ip or "")
    if until is not None:
        left = until - time.monotonic()
        if left > 0:
            raise RateLimited(
                f"too many failed authentications from this address; retry in {int(left) + 1} s",
                retry_after_s=int(left) + 1,
                policy="auth",
            )
        blocked.pop(client_ip or "", None)


async def count_failure(
    limiter: RateLimiter,
    blocked: dict[str, float],
    client_ip: str | None,
    policy: RateLimitPolicy,
) -> Decision:
    """Count a failed authentication; RateLimited (and remembered) once over the limit."""
    decision = await limiter.hit(ip_bucket(client_ip), policy)
    if not decision.allowed:
        blocked[client_ip or ""] = time.monotonic() + decision.retry_after_s
        raise _refuse(decision, "failed authentications")
    return decision
