"""/healthz and /readyz"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from rdev_api.entrypoints.http.deps import ServicesDep
from rdev_common.health import run_checks

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, dict[str, str]]:
    return {"data": {"status": "ok"}}


@router.get("/readyz")
async def readyz(services: ServicesDep) -> JSONResponse:
    results = await run_checks(services.ready_checks)
    ready = all(results.values())
    body = {"data": {"status": "ready" if ready else "not_ready", "checks": results}}
    return JSONResponse(body, status_code=200 if ready else 503)
