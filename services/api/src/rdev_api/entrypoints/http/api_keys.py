"""/api-keys: create (the secret is shown once), list, read, revoke, rotate."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter

from rdev_api.domain.model import ApiKey
from rdev_api.entrypoints.http.deps import PrincipalDep, ServicesDep, SettingsDep
from rdev_api.entrypoints.http.ids import KeyId
from rdev_api.entrypoints.http.schemas import (
    ApiKeyCreate,
    ApiKeyRotate,
    ApiKeyUpdate,
    ApiKeyView,
    ApiKeyWithSecret,
    Envelope,
    ListEnvelope,
)
from rdev_api.service_layer import apikey_service
from rdev_api.service_layer.ports import Services

router = APIRouter(tags=["api-keys"])


def _view(services: Services, key: ApiKey) -> ApiKeyView:
    return ApiKeyView.of(key, services.key_usage.get(key.id))


def _with_secret(key: ApiKey, secret: str) -> ApiKeyWithSecret:
    return ApiKeyWithSecret(**ApiKeyView.of(key).model_dump(), secret=secret)


@router.post("/api-keys", status_code=201, response_model=Envelope[ApiKeyWithSecret])
async def create_key(
    body: ApiKeyCreate, principal: PrincipalDep, services: ServicesDep
) -> Envelope[ApiKeyWithSecret]:
    spec = apikey_service.NewKey(
        name=body.name,
        scopes=[str(s) for s in body.scopes],
        projects=body.projects,
        allowed_ips=body.allowed_ips,
        expires_at=body.expires_at,
        rate_limits={n: (p.limit, p.window_s) for n, p in (body.rate_limits or {}).items()},
    )
    key, secret = await apikey_service.create_key(services.uow(), principal, spec, services.clock())
    return Envelope(data=_with_secret(key, secret))


@router.get("/api-keys", response_model=ListEnvelope[ApiKeyView])
async def list_keys(principal: PrincipalDep, services: ServicesDep) -> ListEnvelope[ApiKeyView]:
    keys = await apikey_service.list_keys(services.uow(), principal)
    return ListEnvelope(data=[_view(services, k) for k in keys])


@router.get("/api-keys/{key_id}", response_model=Envelope[ApiKeyView])
async def get_key(
    key_id: KeyId, principal: PrincipalDep, services: ServicesDep
) -> Envelope[ApiKeyView]:
    key = await apikey_service.get_key(services.uow(), principal, key_id)
    return Envelope(data=_view(services, key))


@router.delete("/api-keys/{key_id}", response_model=Envelope[ApiKeyView])
async def revoke_key(
    key_id: KeyId, principal: PrincipalDep, services: ServicesDep
) -> Envelope[ApiKeyView]:
    """Revoked at once on every replica (within a second); the key's open streams end."""
    key = await apikey_service.revoke_key(services.uow(), principal, key_id, services.clock())
    return Envelope(data=_view(services, key))


@router.patch("/api-keys/{key_id}", response_model=Envelope[ApiKeyView])
async def update_key(
    key_id: KeyId, body: ApiKeyUpdate, principal: PrincipalDep, services: ServicesDep
) -> Envelope[ApiKeyView]:
    """Name, allowed IPs (`null` allows anywhere), expiry, rate limits; effective at once,
    also on the key's open streams."""
    sent = body.model_fields_set
    changes = apikey_service.KeyChanges(
        name=body.name,
        allowed_ips=body.allowed_ips,
        clear_allowed_ips="allowed_ips" in sent and body.allowed_ips is None,
        expires_at=body.expires_at,
        rate_limits=(
            {n: (p.limit, p.window_s) for n, p in body.rate_limits.items()}
            if body.rate_limits is not None
            else None
        ),
    )
    key = await apikey_service.update_key(
        services.uow(), principal, key_id, changes, services.clock()
    )
    return Envelope(data=_view(services, key))


@router.post("/api-keys/{key_id}/rotate", response_model=Envelope[ApiKeyWithSecret])
async def rotate_key(
    key_id: KeyId,
    principal: PrincipalDep,
    services: ServicesDep,
    settings: SettingsDep,
    body: ApiKeyRotate | None = None,
) -> Envelope[ApiKeyWithSecret]:
    """A new secret, shown once; the old one keeps working for `grace_s` seconds."""
    grace_s = body.grace_s if body and body.grace_s is not None else settings.key_rotation_grace_s
    key, secret = await apikey_service.rotate_key(
        services.uow(), principal, key_id, services.clock(), timedelta(seconds=grace_s)
    )
    return Envelope(data=_with_secret(key, secret))
