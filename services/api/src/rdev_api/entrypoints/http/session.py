"""POST/DELETE /session: a browser logs in with a key and gets an HttpOnly cookie."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from rdev_api.entrypoints.http.deps import (
    SESSION_COOKIE,
    ServicesDep,
    SettingsDep,
    authenticate_secret,
)
from rdev_api.entrypoints.http.schemas import Envelope, SessionCreate
from rdev_api.service_layer import auth
from rdev_api.service_layer.auth import SESSION_TTL

router = APIRouter(tags=["session"])


@router.post("/session", response_model=Envelope[dict[str, str]])
async def login(
    body: SessionCreate,
    request: Request,
    response: Response,
    services: ServicesDep,
    settings: SettingsDep,
) -> Envelope[dict[str, str]]:
    now = services.clock()
    # Failed logins count against the client IP like any failed authentication.
    principal = await authenticate_secret(request, services, settings, body.api_key)
    token = await auth.open_session(services.uow(), principal, now)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(SESSION_TTL.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=settings.cookie_secure,
        path="/",
    )
    return Envelope(data={"key_id": principal.key.id, "name": principal.key.name})


@router.delete("/session", status_code=204)
async def logout(request: Request, services: ServicesDep) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await auth.close_session(services.uow(), token)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response
