"""Liveness and readiness probes: the database, Redis, the workers' heartbeats and the outbox lag."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Response
from litestar.datastructures import State
from tortoise import connections

from api.errors import error_response
from api.handlers import get
from kernel.outbox.service import oldest_undelivered_age
from kernel.settings import get_settings
from workers.heartbeat import read_heartbeats

# An undelivered outbox row older than this means jobs are not reaching the workers.
OUTBOX_LAG_ALERT_SECONDS = 60


@get("/health/live", tags=["health"], summary="The process is up")
async def live() -> dict[str, str]:
    return {"status": "ok"}


async def _outbox_lag() -> dict[str, Any]:
    age = await oldest_undelivered_age()
    return {"status": "ok" if age <= OUTBOX_LAG_ALERT_SECONDS else "lagging", "oldest_undelivered_age_seconds": age}


async def _workers(state: State) -> dict[str, Any]:
    heartbeats = await read_heartbeats(state.redis, get_settings().redis.queue_name)
    embedded = state.get("embedded_worker")
    report: dict[str, Any] = {
        "status": "ok" if heartbeats else "no_heartbeat",
        "alive": len(heartbeats),
        "newest_heartbeat_age_seconds": min(heartbeats.values()) if heartbeats else None,
    }
    if embedded is not None:
        report["embedded"] = {"running": embedded.running, "restarts": embedded.restarts}
    return report


@get("/health/ready", tags=["health"], summary="Dependencies, workers and outbox lag")
async def ready(state: State) -> Response:
    """503 when this process cannot serve (database, Redis, or its own embedded worker is down).

    Separate workers without a heartbeat, or an outbox falling behind, make the answer `degraded`
    (still 200): the API keeps taking orders, the jobs wait in the outbox, and pulling every replica
    out of the load balancer because a worker is down would only make things worse.
    """
    checks: dict[str, Any] = {}
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
    if checks["redis"] == "ok":
        try:
            checks["workers"] = await asyncio.wait_for(_workers(state), timeout=2)
        except Exception as exc:
            checks["workers"] = {"status": f"error: {type(exc).__name__}"}
    if checks["database"] == "ok":
        try:
            checks["outbox"] = await asyncio.wait_for(_outbox_lag(), timeout=2)
        except Exception as exc:
            checks["outbox"] = {"status": f"error: {type(exc).__name__}"}
    adapters = state.get("adapters", {})
    embedded = state.get("embedded_worker")
    embedded_down = embedded is not None and checks.get("workers", {}).get("status") != "ok"
    if checks["database"] != "ok" or checks["redis"] != "ok" or embedded_down:
        return error_response(503, "not_ready", "A dependency is not reachable.",
                              {"checks": checks, "adapters": adapters})
    degraded = any(checks.get(name, {}).get("status") != "ok" for name in ("workers", "outbox"))
    return Response({"status": "degraded" if degraded else "ok", "checks": checks, "adapters": adapters})


ROUTES = [live, ready]
