"""Rate limiting use cases: per key (all requests, and command submission), and failed
authentication per client IP."""

from __future__ import annotations

import re

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


async def count_failure(
    limiter: RateLimiter, client_ip: str | None, policy: RateLimitPolicy
) -> Decision:
    """Count a failed authentication of `client_ip`: once over the limit its failures are
    answered 429 instead of 401. Valid keys from the same address keep working, so one
    misconfigured client behind a NAT does not lock out its neighbours."""
    decision = await limiter.hit(ip_bucket(client_ip), policy)
    if not decision.allowed:
        raise _refuse(decision, "failed authentications")
    return decision
