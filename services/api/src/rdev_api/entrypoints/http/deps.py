"""Request dependencies: services, settings, client IP and the calling principal."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from fastapi import Depends, Request

from rdev_api.domain.model import Principal
from rdev_api.service_layer import auth
from rdev_api.service_layer.ports import Services
from rdev_api.settings import ApiSettings

SESSION_COOKIE = "rdev_session"


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings


ServicesDep = Annotated[Services, Depends(get_services)]
SettingsDep = Annotated[ApiSettings, Depends(get_settings)]


def _trusted(address: str, proxies: list[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(net, strict=False) for net in proxies)


def client_ip(request: Request, settings: SettingsDep) -> str | None:
    """The socket peer, or the nearest untrusted X-Forwarded-For hop behind trusted proxies."""
    peer = request.client.host if request.client else None
    if peer is None or not _trusted(peer, settings.trusted_proxies):
        return peer
    hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, settings.trusted_proxies):
            return hop
    return hops[0] if hops else peer


def presented_secret(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


async def current_principal(
    request: Request,
    services: ServicesDep,
    ip: Annotated[str | None, Depends(client_ip)],
) -> Principal:
    principal = await auth.authenticate(
        services.uow(),
        secret=presented_secret(request),
        session_token=request.cookies.get(SESSION_COOKIE),
        client_ip=ip,
        now=services.clock(),
    )
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]
