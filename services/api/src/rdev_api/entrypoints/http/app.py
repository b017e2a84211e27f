"""The FastAPI application: routers, error rendering, body-size limit."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from rdev_api.entrypoints.console import console
from rdev_api.entrypoints.http import (
    api_keys,
    commands,
    errors,
    events,
    health,
    limits,
    observability,
    openapi,
    projects,
    run_input,
    session,
    webhooks,
)
from rdev_api.entrypoints.http.audit import router as audit_router

DOCS_ASSETS = "/docs-assets"
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def build_app(lifespan: Lifespan | None = None) -> FastAPI:
    # /docs and /redoc with Swagger UI and ReDoc served from the fastapi-offline
    # package: nothing is fetched from a CDN, so they work offline and behind proxies.
    app = FastAPIOffline(
        static_url=DOCS_ASSETS,
        title="rdev",
        version="0.1.0",
        lifespan=lifespan,
        description="Run shell commands in project workspaces; stream output over SSE.",
        # OpenTelemetry's ASGI middleware (observability.install) makes the server span
        # and the request metrics; FastAPI's own telemetry would trace every request
        # a second time (a span per dependency, the endpoint, serialization).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    errors.install(app)
    openapi.install(app)
    # body-size limit (413, chunked bodies too) and the RateLimit headers, inside the
    # request middleware and the server span that observability adds around them
    limits.install(app)
    observability.install(app)
    for module in (
        health,
        session,
        projects,
        api_keys,
        commands,
        run_input,
        events,
        webhooks,
    ):
        app.include_router(module.router)
    app.include_router(console.router)
    app.include_router(audit_router)

    return app
