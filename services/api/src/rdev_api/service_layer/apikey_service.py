"""Use cases on API keys: create, list, look at, revoke, rotate.

Managing keys needs the `admin` scope; any key may look at, rotate and revoke itself.
A key limited to some projects can only hand out keys limited to (a subset of) them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from rdev_api.domain.model import ApiKey, Principal, Scope
from rdev_api.domain.ratelimit import RateLimitPolicy
from rdev_api.domain.secrets import display_prefix, generate_secret, hash_secret
from rdev_api.service_layer import admin_events
from rdev_api.service_layer.auth import require_scope
from rdev_api.service_layer.ports import UnitOfWork
from rdev_common import validation
from rdev_common.errors import Forbidden, NotFound, ValidationFailed
from rdev_common.events import ApiKeyRevoked, ApiKeyRotated, ApiKeyUpdated
from rdev_common.ids import new_id

DEFAULT_ROTATION_GRACE = timedelta(hours=1)
MAX_ROTATION_GRACE = timedelta(days=7)
POLICY_NAMES = ("requests", "submit")


@dataclass(frozen=True)
class NewKey:
    name: str
    scopes: list[str]
    projects: list[str] | None = None
    allowed_ips: list[str] | None = None
    expires_at: datetime | None = None
    rate_limits: dict[str, tuple[int, int]] | None = None


def _scopes(values: list[str]) -> frozenset[Scope]:
    if not values:
        raise ValidationFailed("scopes must name at least one scope", field="scopes")
    try:
        return frozenset(Scope(v) for v in values)
    except ValueError as exc:
        allowed = ", ".join(s.value for s in Scope)
        raise ValidationFailed(f"scopes may contain only {allowed}", field="scopes") from exc


def _rate_limits(values: dict[str, tuple[int, int]] | None) -> dict[str, RateLimitPolicy]:
    policies = {}
    for name, (limit, window_s) in (values or {}).items():
        if name not in POLICY_NAMES:
            raise ValidationFailed(
                f"rate_limits.{name}: policies are {', '.join(POLICY_NAMES)}",
                field=f"rate_limits.{name}",
            )
        validation.int_range(limit, f"rate_limits.{name}.limit", 1, 1_000_000)
        validation.int_range(window_s, f"rate_limits.{name}.window_s", 1, 3600)
        policies[name] = RateLimitPolicy(name, limit, window_s)
    return policies


def _projects(principal: Principal, values: list[str] | None) -> frozenset[str] | None:
    if values is not None:
        for i, project in enumerate(values):
            validation.project_id(project, f"projects[{i}]")
    mine = principal.key.projects
    if mine is not None and (values is None or not set(values) <= mine):
        raise Forbidden(
            "a key limited to some projects can only create keys limited to them",
            field="projects",
        )
    return frozenset(values) if values is not None else None


def build_key(principal: Principal, spec: NewKey, now: datetime) -> tuple[ApiKey, str]:
    if spec.expires_at is not None and spec.expires_at <= now:
        raise ValidationFailed("expires_at must be in the future", field="expires_at")
    secret = generate_secret()
    key = ApiKey(
        id=new_id(),
        name=validation.text(spec.name, "name"),
        secret_hash=hash_secret(secret),
        prefix=display_prefix(secret),
        scopes=_scopes(spec.scopes),
        created_at=now,
        projects=_projects(principal, spec.projects),
        allowed_ips=tuple(validation.cidrs(spec.allowed_ips)) if spec.allowed_ips else None,
        expires_at=spec.expires_at,
        rate_limits=_rate_limits(spec.rate_limits),
    )
    return key, secret


async def create_key(
    uow: UnitOfWork, principal: Principal, spec: NewKey, now: datetime
) -> tuple[ApiKey, str]:
    """The new key and its secret: the only time the secret exists outside the caller."""
    require_scope(principal, Scope.ADMIN)
    key, secret = build_key(principal, spec, now)
    async with uow:
        await uow.api_keys.add(key)
        await admin_events.record(
            uow, admin_events.key_created(key), aggregate=key.id, principal=principal
        )
        await uow.commit()
    return key, secret


def _may_manage(principal: Principal, key: ApiKey | None) -> ApiKey:
    """Admins manage keys of their projects; every key manages itself. Others: 404."""
    if key is not None:
        if key.id == principal.key.id:
            return key
        own = principal.key.projects
        inside = own is None or (key.projects is not None and key.projects <= own)
        if principal.key.has_scope(Scope.ADMIN) and inside:
            return key
    raise NotFound("API key not found", field="key_id")


async def list_keys(uow: UnitOfWork, principal: Principal) -> list[ApiKey]:
    async with uow:
        keys = await uow.api_keys.list()
    if not principal.key.has_scope(Scope.ADMIN):
        return [k for k in keys if k.id == principal.key.id]
    own = principal.key.projects
    return [k for k in keys if own is None or (k.projects is not None and k.projects <= own)]


async def get_key(uow: UnitOfWork, principal: Principal, key_id: str) -> ApiKey:
    async with uow:
        return _may_manage(principal, await uow.api_keys.fresh(key_id))


async def revoke_key(uow: UnitOfWork, principal: Principal, key_id: str, now: datetime) -> ApiKey:
    """Revoked at once; revoking twice keeps the first time."""
    async with uow:
        key = _may_manage(principal, await uow.api_keys.get_for_update(key_id))
        if key.revoked_at is not None:
            return key
        key = replace(key, revoked_at=now, previous_secret_hash=None, previous_expires_at=None)
        await uow.api_keys.update(key)
        await admin_events.record(
            uow, ApiKeyRevoked(key_id=key.id), aggregate=key.id, principal=principal
        )
        await uow.commit()
    return key


@dataclass(frozen=True)
class KeyChanges:
    """A partial update of a key; fields left out stay as they are."""

    name: str | None = None
    allowed_ips: list[str] | None = None
    clear_allowed_ips: bool = False
    expires_at: datetime | None = None
    rate_limits: dict[str, tuple[int, int]] | None = None


def _changed(key: ApiKey, changes: KeyChanges, now: datetime) -> tuple[ApiKey, list[str]]:
    updated, fields = key, []
    if changes.name is not None:
        updated, fields = replace(updated, name=validation.text(changes.name, "name")), ["name"]
    if changes.allowed_ips is not None or changes.clear_allowed_ips:
        ips = validation.cidrs(changes.allowed_ips) if changes.allowed_ips else None
        updated = replace(updated, allowed_ips=tuple(ips) if ips else None)
        fields.append("allowed_ips")
    if changes.expires_at is not None:
        if changes.expires_at <= now:
            raise ValidationFailed("expires_at must be in the future", field="expires_at")
        updated = replace(updated, expires_at=changes.expires_at)
        fields.append("expires_at")
    if changes.rate_limits is not None:
        updated = replace(updated, rate_limits=_rate_limits(changes.rate_limits))
        fields.append("rate_limits")
    return updated, fields


async def update_key(
    uow: UnitOfWork, principal: Principal, key_id: str, changes: KeyChanges, now: datetime
) -> ApiKey:
    """Admins change a key's name, addresses, expiry and limits; it takes effect on open
    streams too. Scopes and projects never change: issue a new key instead."""
    require_scope(principal, Scope.ADMIN)
    async with uow:
        key = _may_manage(principal, await uow.api_keys.get_for_update(key_id))
        if not key.is_active(now):
            raise NotFound("API key not found", field="key_id")
        key, fields = _changed(key, changes, now)
        await uow.api_keys.update(key)
        event = ApiKeyUpdated(
            key_id=key.id,
            changed=fields,
            name=key.name,
            allowed_ips=list(key.allowed_ips) if key.allowed_ips is not None else None,
            expires_at=key.expires_at,
        )
        await admin_events.record(uow, event, aggregate=key.id, principal=principal)
        await uow.commit()
    return key


async def rotate_key(
    uow: UnitOfWork,
    principal: Principal,
    key_id: str,
    now: datetime,
    grace: timedelta = DEFAULT_ROTATION_GRACE,
) -> tuple[ApiKey, str]:
    """A new secret; the replaced one keeps working for `grace` (0: stops at once)."""
    if not timedelta(0) <= grace <= MAX_ROTATION_GRACE:
        raise ValidationFailed(
            f"grace_s must be between 0 and {int(MAX_ROTATION_GRACE.total_seconds())}",
            field="grace_s",
        )
    secret = generate_secret()
    async with uow:
        key = _may_manage(principal, await uow.api_keys.get_for_update(key_id))
        if not key.is_active(now):
            raise NotFound("API key not found", field="key_id")
        key = replace(
            key,
            secret_hash=hash_secret(secret),
            prefix=display_prefix(secret),
            previous_secret_hash=key.secret_hash if grace else None,
            previous_expires_at=now + grace if grace else None,
        )
        await uow.api_keys.update(key)
        event = ApiKeyRotated(
            key_id=key.id, prefix=key.prefix, previous_valid_until=key.previous_expires_at
        )
        await admin_events.record(uow, event, aggregate=key.id, principal=principal)
        await uow.commit()
    return key, secret


async def flush_usage(uow: UnitOfWork, usage: dict[str, datetime]) -> int:
    """Write the `last_used_at` times gathered in memory since the last flush."""
    if not usage:
        return 0
    batch = dict(usage)
    usage.clear()
    try:
        async with uow:
            await uow.api_keys.touch(batch)
            await uow.commit()
    except Exception:
        for key_id, at in batch.items():  # kept for the next flush, unless newer arrived
            if usage.get(key_id) is None or usage[key_id] < at:
                usage[key_id] = at
        raise
    return len(batch)
