"""Request dependencies: services, settings, client IP and the calling principal."""

from __future__ import annotations

import ipaddress
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyCookie, APIKeyHeader, HTTPBearer

from rdev_api.domain.model import Principal
from rdev_api.domain.ratelimit import Decision, RateLimitPolicy
from rdev_api.service_layer import auth, rate_limits
from rdev_api.service_layer.ports import Services
from rdev_api.settings import ApiSettings
from rdev_common.errors import Forbidden, RateLimited, Unauthenticated

SESSION_COOKIE = "rdev_session"


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_settings(request: Request) -> ApiSettings:
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


async def _client_ip_dep(request: Request, settings: SettingsDep) -> str | None:
    # An async dependency runs on the event loop; a plain `def` one would cost a
    # worker-thread hand-off on every request.
    return client_ip(request, settings)


def presented_secret(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


SUBMIT_ROUTE = "/projects/{project_id}/shell"


def default_policies(settings: ApiSettings) -> dict[str, RateLimitPolicy]:
    return {
        "requests": RateLimitPolicy(
            "requests", settings.rate_limit_requests, settings.rate_limit_window_s
        ),
        "submit": RateLimitPolicy(
            "submit", settings.rate_limit_submit, settings.rate_limit_submit_window_s
        ),
        "auth": RateLimitPolicy(
            "auth", settings.rate_limit_auth_failures, settings.rate_limit_auth_failures_window_s
        ),
    }


def _note(request: Request, decisions: list[Decision]) -> None:
    """Kept for the RateLimit headers every response of this request carries."""
    request.state.rate_limits = decisions


async def _authenticate(
    request: Request,
    services: Services,
    settings: ApiSettings,
    ip: str | None,
    secret: str | None = None,
) -> Principal:
    limiter = services.rate_limiter if settings.rate_limit_enabled else None
    try:
        return await auth.authenticate(
            services.uow(),
            secret=secret if secret is not None else presented_secret(request),
            session_token=None if secret is not None else request.cookies.get(SESSION_COOKIE),
            client_ip=ip,
            now=services.clock(),
        )
    except (Unauthenticated, Forbidden):
        if limiter is not None:
            policy = default_policies(settings)["auth"]
            try:
                _note(
                    request,
                    [await rate_limits.count_failure(limiter, ip, policy)],
                )
            except RateLimited:
                _note(
                    request,
                    [Decision(policy, False, 0, settings.rate_limit_auth_failures_window_s)],
                )
                raise
        raise


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def same_origin(request: Request) -> bool:
    """The browser says the request comes from a page of this server: `Sec-Fetch-Site:
    same-origin`, or an `Origin` whose host and port are the request's `Host` (the
    scheme is not compared: a TLS-terminating proxy changes it, a foreign page cannot
    forge the host)."""
    if request.headers.get("sec-fetch-site", "").lower() == "same-origin":
        return True
    origin, host = request.headers.get("origin"), request.headers.get("host")
    if not origin or not host or origin == "null":
        return False
    return urlsplit(origin).netloc.lower() == host.lower()


def require_same_origin_for_cookies(request: Request) -> None:
    """A state change authenticated by the session cookie must come from this origin
    (defence in depth behind SameSite=Strict); a key in a header needs no such check."""
    if (
        request.method not in SAFE_METHODS
        and SESSION_COOKIE in request.cookies
        and presented_secret(request) is None
        and not same_origin(request)
    ):
        raise Forbidden(
            "a request authenticated by the session cookie must come from this origin "
            "(Origin or Sec-Fetch-Site: same-origin)",
            field="Origin",
        )


# How a caller authenticates, as the OpenAPI document shows it (an Authorize button in
# /docs; generated clients know the header). Read here only for the document: the
# principal comes from `presented_secret` and the cookie below.
API_KEY = APIKeyHeader(
    name="X-API-Key",
    scheme_name="ApiKey",
    description="An API key (`rdev_…`); `Authorization: Bearer <key>` works too",
    auto_error=False,
)
BEARER = HTTPBearer(
    scheme_name="Bearer", description="The API key as a bearer token", auto_error=False
)
SESSION = APIKeyCookie(
    name=SESSION_COOKIE,
    scheme_name="Session",
    description="The console's session (POST /session); state changes need a same-origin "
    "Origin or Sec-Fetch-Site",
    auto_error=False,
)


async def current_principal(
    request: Request,
    services: ServicesDep,
    settings: SettingsDep,
    ip: Annotated[str | None, Depends(_client_ip_dep)],
    _key: Annotated[str | None, Security(API_KEY)] = None,
    _bearer: Annotated[object | None, Security(BEARER)] = None,
    _session: Annotated[str | None, Security(SESSION)] = None,
) -> Principal:
    require_same_origin_for_cookies(request)
    principal = await _authenticate(request, services, settings, ip)
    request.state.principal = principal
    # last_used_at: remembered here, written in batches (never a write per request)
    services.key_usage[principal.key.id] = services.clock()
    if services.rate_limiter is not None and settings.rate_limit_enabled:
        route = request.scope.get("route")
        submitting = request.method == "POST" and getattr(route, "path", "") == SUBMIT_ROUTE
        policies = rate_limits.policies_for(principal.key, default_policies(settings), submitting)
        decisions = await rate_limits.count_key(services.rate_limiter, principal.key, policies)
        _note(request, decisions)
        rate_limits.enforce(decisions)
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]


async def authenticate_secret(
    request: Request, services: Services, settings: ApiSettings, secret: str
) -> Principal:
    """Authenticate a secret given in a body (browser login), with the same IP limits."""
    return await _authenticate(request, services, settings, client_ip(request, settings), secret)
