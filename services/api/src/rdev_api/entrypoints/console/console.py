"""Serve the web console: index.html at `/`, its assets under `/console/`.

The bundle is plain files shipped inside the package, so the console works
offline and from the API's own origin (its EventSource then carries the session
cookie). Only files that exist in the bundle are served: the name is looked up,
never joined onto a path, so nothing outside the bundle can be reached.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter, Response

from rdev_common.errors import NotFound

router = APIRouter(include_in_schema=False)

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Scripts and styles only from this origin: no CDN, no inline script.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; "
        "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",
}


@cache
def bundle() -> dict[str, bytes]:
    """Every asset of the bundle by file name, read once."""
    root = resources.files(__package__ or "rdev_api.entrypoints.console") / "static"
    return {
        item.name: item.read_bytes()
        for item in root.iterdir()
        if item.is_file() and _suffix(item.name) in CONTENT_TYPES
    }


def _suffix(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:] if dot >= 0 else ""


def _asset(name: str) -> Response:
    body = bundle().get(name)
    if body is None:
        raise NotFound(f"console asset {name!r} not found", field="path")
    return Response(body, media_type=CONTENT_TYPES[_suffix(name)], headers=SECURITY_HEADERS)


@router.get("/")
async def index() -> Response:
    return _asset("index.html")


@router.get("/console/{name}")
async def asset(name: str) -> Response:
    return _asset(name)
