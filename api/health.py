"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio

from litestar import Response, get
from litestar.datastructures import State
from tortoise import connections

from api.errors import error_response


@get("/health/live", tags=["health"], summary="The process is up")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@get("/health/ready", tags=["health"], summary="The database and Redis answer")
async def ready(state: State) -> Response:
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(connections.get("default").execute_query("SELECT 1"), timeout=2)
        checks["database"] = "ok"
    except Exception as exc:  # any failure means "not ready"; the type is reported, not raised
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        await asyncio.wait_for(state.redis.ping(), timeout=2)
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    if all(v == "ok" for v in checks.values()):
        return Response({"status": "ok", "checks": checks})
    return error_response(503, "not_ready", "A dependency is not reachable.", {"checks": checks})


ROUTES = [live, ready]
