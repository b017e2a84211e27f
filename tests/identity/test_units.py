"""Rate-limit arithmetic, the identity cache, and the shared validation package."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from rdev_api.adapters.cached_identity import CachedUnitOfWork, IdentityCache
from rdev_api.adapters.nats_admin_listener import forget
from rdev_api.domain.model import ApiKey, Project, Scope
from rdev_api.domain.ratelimit import RateLimitPolicy, decide
from rdev_api.service_layer import rate_limits
from rdev_common import validation
from rdev_common.errors import RateLimited, ValidationFailed
from tests.identity.fakes import FakeRateLimiter, FakeUnitOfWork, Store

NOW = datetime(2026, 11, 27, tzinfo=UTC)
POLICY = RateLimitPolicy("requests", 10, 60)


def test_the_sliding_window_weighs_the_previous_window() -> None:
    assert decide(POLICY, previous=0, current=10, elapsed=0.5).allowed
    refused = decide(POLICY, previous=0, current=11, elapsed=0.5)
    assert not refused.allowed and refused.retry_after_s == 36
    # half of the previous window's 10 still counts: 5 + 5 = 10 allowed, 11 not
    assert decide(POLICY, previous=10, current=5, elapsed=0.5).allowed
    assert decide(POLICY, previous=10, current=6, elapsed=0.5).retry_after_s == 6


def test_headers_follow_the_ietf_draft() -> None:
    decision = decide(POLICY, previous=0, current=3, elapsed=0.25)
    assert POLICY.header() == '"requests";q=10;w=60'
    assert decision.header() == '"requests";r=7;t=45'


async def test_a_key_is_limited_and_told_when_to_retry() -> None:
    limiter = FakeRateLimiter(now=600.0)
    key = ApiKey("k", "k", "h", "p", frozenset({Scope.ADMIN}), NOW)
    for _ in range(10):
        rate_limits.enforce(await rate_limits.count_key(limiter, key, [POLICY]))
    with pytest.raises(RateLimited) as refused:
        rate_limits.enforce(await rate_limits.count_key(limiter, key, [POLICY]))
    assert refused.value.retry_after_s == 66  # 0.1 into the next window 90% of 10 still counts
    limiter.now += 60  # a new window: the old one still weighs fully at its start
    with pytest.raises(RateLimited):
        rate_limits.enforce(await rate_limits.count_key(limiter, key, [POLICY]))
    limiter.now += 6
    rate_limits.enforce(await rate_limits.count_key(limiter, key, [POLICY]))


def test_submission_adds_its_own_lower_policy_and_keys_override_defaults() -> None:
    defaults = {"requests": POLICY, "submit": RateLimitPolicy("submit", 2, 60)}
    own = RateLimitPolicy("submit", 5, 10)
    key = ApiKey("k", "k", "h", "p", frozenset(), NOW, rate_limits={"submit": own})
    assert rate_limits.policies_for(key, defaults, submitting=False) == [POLICY]
    assert rate_limits.policies_for(key, defaults, submitting=True) == [POLICY, own]


async def test_failed_authentications_are_counted_per_address() -> None:
    limiter = FakeRateLimiter()
    policy = RateLimitPolicy("auth", 2, 60)
    await rate_limits.count_failure(limiter, "192.0.2.1", policy)
    await rate_limits.count_failure(limiter, "192.0.2.1", policy)
    await rate_limits.count_failure(limiter, "2001:db8::1", policy)
    with pytest.raises(RateLimited):
        await rate_limits.count_failure(limiter, "192.0.2.1", policy)
    assert rate_limits.ip_bucket("2001:db8::1") == "ip-2001_db8__1"


async def test_the_cache_answers_from_memory_until_an_admin_event_names_the_entry() -> None:
    store = Store()
    store.projects["alpha"] = Project("alpha", "/", NOW, NOW)
    cache = IdentityCache(ttl_s=3600)
    first = CachedUnitOfWork(FakeUnitOfWork(store), cache)
    async with first:
        assert (await first.projects.get("alpha")) is not None
    store.projects["alpha"] = Project("alpha", "/srv", NOW, NOW)  # changed by another replica
    async with CachedUnitOfWork(FakeUnitOfWork(store), cache) as uow:
        assert (await uow.projects.get("alpha")).workdir == "/"  # type: ignore[union-attr]
    forget(cache, "rdev.admin.project.updated", b'{"subject": "alpha"}')
    async with CachedUnitOfWork(FakeUnitOfWork(store), cache) as uow:
        assert (await uow.projects.get("alpha")).workdir == "/srv"  # type: ignore[union-attr]


def test_a_load_that_raced_an_invalidation_is_not_kept() -> None:
    cache = IdentityCache()
    generation = cache.generation
    cache.forget_key("k")  # an admin event arrived while the database was being read
    cache.store_key(ApiKey("k", "k", "h", "p", frozenset(), NOW), generation)
    assert cache.keys.get("k") is None


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: validation.project_id("Has Space"), "id"),
        (lambda: validation.ident("a/../b", "key_id"), "key_id"),
        (lambda: validation.command_text("echo \x00"), "command"),
        (lambda: validation.command_text("x" * 70_000), "command"),
        (lambda: validation.command_text("   "), "command"),
        (lambda: validation.env_map({"BAD-NAME": "x"}), "env.BAD-NAME"),
        (lambda: validation.relative_cwd("../etc"), "cwd"),
        (lambda: validation.relative_cwd("/etc"), "cwd"),
        (lambda: validation.cidrs(["10.0.0.0/8", "10.0.0.0/33"]), "allowed_ips[1]"),
        (lambda: validation.url("ftp://example.com"), "url"),
        (lambda: validation.url("https://user:pw@example.com"), "url"),
        (lambda: validation.url("https://exa mple.com"), "url"),
        (lambda: validation.url("https://example.com:99999"), "url"),
        (lambda: validation.text("a\nb", "name"), "name"),
        (
            lambda: validation.patterns(["re:[unclosed"], "command_policy.allow"),
            "command_policy.allow[0]",
        ),
    ],
)
def test_every_validation_error_names_its_field(call: object, field: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        call()  # type: ignore[operator]
    assert refused.value.details["field"] == field


def test_cwd_cannot_leave_the_workdir_through_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "inside").mkdir()
    (tmp_path / "escape").symlink_to("/")
    inside = str((tmp_path / "inside").resolve())
    assert validation.resolved_cwd(str(tmp_path), "inside/../inside") == inside
    with pytest.raises(ValidationFailed):
        validation.resolved_cwd(str(tmp_path), "escape/etc")


def test_valid_values_pass_normalised() -> None:
    assert validation.cidrs(["10.1.2.3", "10.0.0.0/8"]) == ["10.1.2.3/32", "10.0.0.0/8"]
    assert validation.url("https://example.com/hook?x=1") == "https://example.com/hook?x=1"
    assert validation.relative_cwd("a/./b/") == "a/b"
