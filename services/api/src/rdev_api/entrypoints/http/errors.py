"""The one place where errors become HTTP responses: `{"error": {code, message, details}}`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sql_errors
from starlette.exceptions import HTTPException
from starlette.routing import Match

from rdev_api.entrypoints.http.ids import PATTERN_WORDS
from rdev_common import errors
from rdev_common.db import outage
from rdev_common.metrics import RATE_LIMIT_REJECTIONS

log = structlog.get_logger()

STATUS: dict[type[errors.RdevError], int] = {
    errors.ValidationFailed: 422,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
    errors.PayloadTooLarge: 413,
    errors.RateLimited: 429,
    errors.Unavailable: 503,
}
HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "unavailable",
}


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return JSONResponse(body, status_code=status, headers=headers)


def _field(loc: tuple[Any, ...]) -> str:
    # pydantic ends a dict key's location with "[key]": the key itself names the field.
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "[key]")]
    return ".".join(parts) or "body"


async def _rdev_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.RdevError)
    status = next((s for cls, s in STATUS.items() if isinstance(exc, cls)), 500)
    headers = (
        {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, errors.RateLimited) else None
    )
    if isinstance(exc, errors.RateLimited):  # every 429 passes here, whichever limit refused
        RATE_LIMIT_REJECTIONS.labels(limit=str(exc.details.get("policy", "unknown"))).inc()
    return error_response(status, exc.code, exc.message, exc.details, headers)


def _words(error: Any) -> str:
    """Pydantic's message, with a regular expression replaced by what it means."""
    ctx = error.get("ctx") or {}
    if error["type"] == "string_pattern_mismatch":
        return "must be " + PATTERN_WORDS.get(str(ctx.get("pattern")), "of the documented form")
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def _malformed(request: Request, errors: list[Any]) -> JSONResponse | None:
    """400 for a body that is not JSON at all, 415 for one sent as another media type:
    said in words, not as a field named after a byte offset."""
    for e in errors:
        if e["type"] == "json_invalid":
            ctx = e.get("ctx") or {}
            where = e["loc"][1] if len(e["loc"]) > 1 else None
            message = f"the request body is not valid JSON: {ctx.get('error', 'decode error')}"
            if isinstance(where, int):
                message += f" (at character {where})"
            return error_response(400, "malformed_json", message, {"field": "body"})
        if tuple(e["loc"]) == ("body",) and isinstance(e.get("input"), bytes | bytearray):
            sent = request.headers.get("content-type") or "none"
            return error_response(
                415,
                "unsupported_media_type",
                f"the request body must be JSON: send Content-Type: application/json "
                f"(got {sent[:60]!r})",
                {"field": "Content-Type"},
            )
    return None


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    malformed = _malformed(request, list(exc.errors()))
    if malformed is not None:
        return malformed
    problems = [{"field": _field(tuple(e["loc"])), "message": _words(e)} for e in exc.errors()]
    message = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    # `field` names the first problem, as a domain error names its one field: a client reads
    # the same key whichever layer refused the request.
    details = {"field": problems[0]["field"], "errors": problems} if problems else {}
    return error_response(422, "validation_error", message, details)


def _routes(routes: Any) -> Iterator[Any]:
    """Every route, into included routers (FastAPI wraps them; rdev mounts them without
    a prefix)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _routes(inner.routes)
        else:
            yield route


def allowed_methods(request: Request) -> str:
    """Every method some route of this path takes (Starlette names only the first
    route's, and rdev has one route per method)."""
    methods: set[str] = set()
    probe = {**request.scope, "method": "\x00"}  # a method no route takes
    for route in _routes(request.app.router.routes):
        match, _ = route.matches(probe)
        if match == Match.PARTIAL:
            methods |= set(getattr(route, "methods", None) or ())
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = HTTP_CODES.get(exc.status_code, "error")
    headers = dict(exc.headers) if exc.headers else None
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": allowed_methods(request)}
    return error_response(exc.status_code, code, str(exc.detail), headers=headers)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """A request that needs the database while it is away: 503 and when to retry, with
    no traceback (the outage is logged once, when it begins; see rdev_common.db.outage)."""
    if not outage.is_unavailable(exc):
        return await _unexpected(request, exc)
    outage.DATABASE.failed(exc)
    return error_response(
        503,
        "unavailable",
        "database unavailable",
        {"dependency": "database"},
        headers={"Retry-After": str(outage.RETRY_AFTER_S)},
    )


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", error=type(exc).__name__)
    return error_response(500, "internal", "internal error")


def install(app: FastAPI) -> None:
    app.add_exception_handler(errors.RdevError, _rdev_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(sql_errors.DBAPIError, _database_error)
    app.add_exception_handler(sql_errors.TimeoutError, _database_error)
    app.add_exception_handler(Exception, _unexpected)
