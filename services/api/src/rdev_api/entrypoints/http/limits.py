"""ASGI middleware of the identity layer: body-size limit and rate-limit headers.

Pure ASGI (not `@app.middleware`), so a chunked body is counted as it arrives and the
headers reach streaming responses too.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rdev_api.entrypoints.http.errors import error_response


class BodyLimit:
    """413 for a body over `max_body_bytes`: at once from Content-Length, and for a body
    without one (chunked) after reading at most that many bytes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _streams_body(scope):
            await self.app(scope, receive, send)
            return
        limit: int = scope["app"].state.settings.max_body_bytes
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"").decode()
        if length.isdigit():
            if int(length) > limit:
                await _too_large(limit, scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if scope["method"] in ("GET", "HEAD", "DELETE", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        messages, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > limit:
                await _too_large(limit, scope, receive, send)
                return
            messages.append(message)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(messages, receive), send)


def _streams_body(scope: Scope) -> bool:
    """A run's stdin streams through (bounded per run by the executor, not here)."""
    path: str = scope.get("path", "")
    return scope["method"] == "PUT" and path.startswith("/commands/") and path.endswith("/stdin")


def _replay(messages: list[Message], receive: Receive) -> Receive:
    async def replay() -> Message:
        return messages.pop(0) if messages else await receive()

    return replay


async def _too_large(limit: int, scope: Scope, receive: Receive, send: Send) -> None:
    response = error_response(
        413,
        "payload_too_large",
        f"request body is larger than {limit} bytes",
        {"field": "body", "limit": limit},
    )
    await response(scope, receive, send)


class RateLimitHeaders:
    """`RateLimit-Policy` and `RateLimit` (IETF draft) on every response of a counted request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        state = scope.setdefault("state", {})  # the dict behind `request.state`

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                decisions: Any = state.get("rate_limits")
                if decisions:
                    headers = list(message.get("headers", []))
                    policy = ", ".join(d.policy.header() for d in decisions)
                    current = ", ".join(d.header() for d in decisions)
                    headers.append((b"ratelimit-policy", policy.encode()))
                    headers.append((b"ratelimit", current.encode()))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install(app: Any) -> None:
    app.add_middleware(RateLimitHeaders)
    app.add_middleware(BodyLimit)
