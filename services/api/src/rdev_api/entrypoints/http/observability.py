"""Traces, request ids, request metrics and GET /metrics for the API.

`install(app)` is the one hook: it sets OpenTelemetry up (idempotent per process),
wraps the app in OpenTelemetry's ASGI middleware (the server span) and, inside it,
a pure ASGI middleware (not BaseHTTPMiddleware, which would buffer SSE) that binds a
request id, names the server span by route template, times the request and writes
one access log line.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator, MutableMapping
from typing import Any, TypeVar

import structlog
from fastapi import APIRouter, FastAPI
from fastapi.responses import Response
from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rdev_common.metrics import HTTP_REQUEST_DURATION, SSE_CONNECTIONS, exposition
from rdev_common.telemetry import configure_telemetry

log = structlog.get_logger()

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is echoed only if it is short and plain: it ends up in logs and headers.
VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
UNTRACED = "/healthz,/readyz,/metrics"
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})

router = APIRouter(tags=["health"])
T = TypeVar("T")


@router.get("/metrics", include_in_schema=True)
async def metrics() -> Response:
    """Prometheus metrics of this API process."""
    body, content_type = exposition()
    return Response(body, media_type=content_type)


def request_id_from(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            candidate: str = value.decode("latin-1")
            if VALID_REQUEST_ID.match(candidate):
                return candidate
    return uuid.uuid4().hex


class RequestContextMiddleware:
    """X-Request-ID in and out, bound into log context and the server span; request timing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope)
        began = time.perf_counter()
        status = [500]

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                _name_server_span(scope)
                status[0] = message["status"]
                headers: list[tuple[bytes, bytes]] = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
                _observe(scope, status[0], time.perf_counter() - began)
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            trace.get_current_span().set_attribute("rdev.request_id", request_id)
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                _access_log(scope, status[0], time.perf_counter() - began)


def _method_only(scope: Scope) -> tuple[str, dict[str, Any]]:
    """The server span's name until routing knows the route (see `_name_server_span`)."""
    return str(scope.get("method", "HTTP")), {}


def _name_server_span(scope: Scope) -> None:
    """`<method> <route template>` for the server span, as routing found it."""
    route = getattr(scope.get("route"), "path", None)
    span = trace.get_current_span()
    if route and span.is_recording():
        span.update_name(f"{scope.get('method', 'HTTP')} {route}")
        span.set_attribute("http.route", route)


def _route(scope: MutableMapping[str, Any]) -> str:
    route = scope.get("route")
    return str(getattr(route, "path", None) or "unmatched")


def _observe(scope: Scope, status: int, seconds: float) -> None:
    HTTP_REQUEST_DURATION.labels(
        method=scope.get("method", ""), route=_route(scope), status=str(status)
    ).observe(seconds)


def _access_log(scope: Scope, status: int, seconds: float) -> None:
    route = _route(scope)
    if route in QUIET_ROUTES:
        return
    log.info(
        "request handled",
        method=scope.get("method"),
        route=route,
        status=status,
        duration_ms=round(seconds * 1000, 2),
    )


async def count_sse(body: AsyncIterator[T]) -> AsyncIterator[T]:
    """Wrap an SSE body so the open-connections gauge follows it."""
    SSE_CONNECTIONS.inc()
    try:
        async for item in body:
            yield item
    finally:
        SSE_CONNECTIONS.dec()


def install(app: FastAPI) -> None:
    """Telemetry for the API app; call once from the app factory."""
    configure_telemetry("api")
    app.include_router(router)
    # The middleware goes inside the OpenTelemetry one, so the server span is current
    # when the request id is bound.
    app.add_middleware(RequestContextMiddleware)
    # The ASGI middleware, not FastAPIInstrumentor: that one matches every request
    # against every route again to name its span; routing has already done that, and
    # the request middleware names the span from its result.
    app.add_middleware(
        OpenTelemetryMiddleware,
        excluded_urls=UNTRACED,
        exclude_spans=["receive", "send"],
        default_span_details=_method_only,
    )
