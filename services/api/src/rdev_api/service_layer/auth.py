"""Authentication and authorization use cases."""

from __future__ import annotations

import ipaddress
import secrets
from datetime import datetime, timedelta

from rdev_api.domain.model import ApiKey, Principal, Scope
from rdev_api.domain.secrets import display_prefix, generate_secret, hash_secret
from rdev_api.service_layer.ports import UnitOfWork
from rdev_common.errors import Forbidden, Unauthenticated
from rdev_common.ids import new_id

SESSION_TTL = timedelta(hours=12)


def require_scope(principal: Principal, scope: Scope) -> None:
    if not principal.key.has_scope(scope):
        raise Forbidden(f"this API key lacks the {scope.value!r} scope", scope=scope.value)


def require_project(principal: Principal, project_id: str) -> None:
    """A key limited to some projects may not name another one (it would not see it)."""
    if not principal.key.may_see(project_id):
        raise Forbidden(
            "this API key is limited to some projects", field="projects", project=project_id
        )


def _ip_allowed(key: ApiKey, client_ip: str | None) -> bool:
    if not key.allowed_ips:
        return True
    try:
        address = ipaddress.ip_address(client_ip or "")
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in key.allowed_ips)


def check_key(
    key: ApiKey | None,
    client_ip: str | None,
    now: datetime,
    secret_hash: str | None = None,
) -> Principal:
    """The principal for `key`, or why it may not act: 401 unknown/expired/revoked, 403 IP."""
    which = key.accepts(secret_hash, now) if key and secret_hash else "current"
    if key is None or which is None or not key.is_active(now):
        raise Unauthenticated("invalid, expired or revoked API key")
    if not _ip_allowed(key, client_ip):
        raise Forbidden("this API key may not be used from this address", client_ip=client_ip)
    return Principal(
        key=key,
        client_ip=client_ip,
        via_previous=which == "previous",
        via_session=secret_hash is None,
    )


async def still_valid(uow: UnitOfWork, principal: Principal, now: datetime) -> bool:
    """Whether a principal authenticated earlier (an open stream) may still act."""
    async with uow:
        key = await uow.api_keys.get(principal.key.id)
    if key is None or not key.is_active(now) or not _ip_allowed(key, principal.client_ip):
        return False
    if principal.via_session:
        return True
    # The secret it authenticated with: still current, or replaced but within its grace.
    used = (
        principal.key.previous_secret_hash if principal.via_previous else principal.key.secret_hash
    )
    return used is not None and key.accepts(used, now) is not None


async def authenticate(
    uow: UnitOfWork,
    *,
    secret: str | None,
    session_token: str | None,
    client_ip: str | None,
    now: datetime,
) -> Principal:
    secret_hash = hash_secret(secret) if secret else None
    async with uow:
        if secret_hash:
            key = await uow.api_keys.get_by_hash(secret_hash)
        elif session_token:
            key_id = await uow.sessions.key_id_for(hash_secret(session_token), now)
            key = await uow.api_keys.get(key_id) if key_id else None
        else:
            raise Unauthenticated("an API key is required (X-API-Key or Authorization: Bearer)")
    return check_key(key, client_ip, now, secret_hash)


async def open_session(uow: UnitOfWork, principal: Principal, now: datetime) -> str:
    """A browser session for the key: returns the cookie's token."""
    token = secrets.token_urlsafe(32)
    async with uow:
        await uow.sessions.add(hash_secret(token), principal.key.id, now, now + SESSION_TTL)
        await uow.commit()
    return token


async def close_session(uow: UnitOfWork, token: str) -> None:
    async with uow:
        await uow.sessions.remove(hash_secret(token))
        await uow.commit()


async def ensure_bootstrap_key(uow: UnitOfWork, secret: str | None, now: datetime) -> str | None:
    """Make sure an admin key exists; returns a newly generated secret, if one was made.

    With `secret`, a key with exactly that secret exists afterwards. Without it, a key
    is generated only when no key exists at all.
    """
    async with uow:
        if secret is not None:
            if await uow.api_keys.get_by_hash(hash_secret(secret)) is not None:
                return None
        elif await uow.api_keys.count() > 0:
            return None
        new_secret = secret or generate_secret()
        await uow.api_keys.add(
            ApiKey(
                id=new_id(),
                name="bootstrap admin",
                secret_hash=hash_secret(new_secret),
                prefix=display_prefix(new_secret),
                scopes=frozenset({Scope.ADMIN}),
                created_at=now,
            )
        )
        await uow.commit()
    return None if secret is not None else new_secret
