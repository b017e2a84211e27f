"""/healthz, /readyz and /metrics for services without a public HTTP API."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Generator, Mapping

import structlog
import uvicorn
from opentelemetry.instrumentation.utils import suppress_instrumentation
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rdev_common.metrics import exposition

log = structlog.get_logger()

Check = Callable[[], Awaitable[bool]]


async def run_checks(checks: Mapping[str, Check], timeout_s: float = 2.0) -> dict[str, bool]:
    """Each named dependency check, answered within `timeout_s` or failed."""

    async def one(check: Check) -> bool:
        try:
            return await asyncio.wait_for(check(), timeout_s)
        except Exception:  # a failing check is a "no", never a crash
            return False

    # Probes run every few seconds: their SQL and broker calls are not worth a trace each.
    with suppress_instrumentation():
        results = await asyncio.gather(*(one(c) for c in checks.values()))
    return dict(zip(checks, results, strict=True))


def health_app(checks: Mapping[str, Check]) -> Starlette:
    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"data": {"status": "ok"}})

    async def readyz(_: Request) -> JSONResponse:
        results = await run_checks(checks)
        ready = all(results.values())
        body = {"data": {"status": "ready" if ready else "not_ready", "checks": results}}
        return JSONResponse(body, status_code=200 if ready else 503)

    async def metrics(_: Request) -> Response:
        body, content_type = exposition()
        return Response(body, media_type=content_type)

    return Starlette(
        routes=[Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", metrics)]
    )


def health_server(checks: Mapping[str, Check], host: str, port: int) -> uvicorn.Server:
    """A uvicorn server for the health app, to run inside the service's event loop."""
    config = uvicorn.Config(
        health_app(checks), host=host, port=port, log_level="warning", lifespan="off"
    )
    return _QuietServer(config)


class _QuietServer(uvicorn.Server):
    """Leaves SIGTERM/SIGINT to the service, which stops its work before the server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield
