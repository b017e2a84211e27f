"""The FastAPI application: routers, error rendering, body-size limit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI, Request, Response

from rdev_api.entrypoints.console import console
from rdev_api.entrypoints.http import (
    commands,
    errors,
    events,
    health,
    observability,
    projects,
    session,
    webhooks,
)

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def build_app(lifespan: Lifespan | None = None) -> FastAPI:
    app = FastAPI(
        title="rdev",
        version="0.1.0",
        lifespan=lifespan,
        description="Run shell commands in project workspaces; stream output over SSE.",
    )
    errors.install(app)
    observability.install(app)
    for module in (health, session, projects, commands, events, webhooks):
        app.include_router(module.router)
    app.include_router(console.router)

    @app.middleware("http")
    async def limit_body(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Any:
        length = request.headers.get("content-length")
        limit = request.app.state.settings.max_body_bytes
        if length and length.isdigit() and int(length) > limit:
            return errors.error_response(
                413,
                "payload_too_large",
                f"request body is larger than {limit} bytes",
                {"field": "body", "limit": limit},
            )
        return await call_next(request)

    return app
