"""GET /metrics in Prometheus' text format: request latency by route template (the request metrics
middleware), jobs run and failed by name, the outbox's backlog and lag, and the database pool's usage.

With METRICS_TOKEN set (production refuses to start without it) only `Authorization: Bearer <token>` reads them.
"""

from __future__ import annotations

import hmac
import time
from typing import Any

from litestar import Request, Response
from litestar.datastructures import State
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from api.errors import error_response
from api.handlers import get
from kernel import metrics

# Request latency and counts by method, route template (`/app/groups/{group_id:int}/join`) and status, under
# the names and labels Litestar's Prometheus middleware gives them. Our own middleware: Litestar's built a
# Request object and three label dicts on every request, a third of what `/health/live` costs; this one
# keeps each (method, route, status)'s labelled children and touches only those.
_APP_NAME = "clinic"
_LABELS = ["method", "path", "status_code", "app_name"]
_REQUESTS = Counter("clinic_requests_total", "Total requests", _LABELS)
_ERRORS = Counter("clinic_requests_error_total", "Total errors in requests", _LABELS)
_DURATION = Histogram("clinic_request_duration_seconds", "Request duration, in seconds", _LABELS,
                      buckets=[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10])
_IN_PROGRESS = Gauge("clinic_requests_in_progress", "Total requests currently in progress", _LABELS,
                     multiprocess_mode="livesum")
_UNMEASURED = frozenset({"/metrics"})


def request_metrics_middleware(app: ASGIApp) -> ASGIApp:
    """Counts each request and its duration (until the last body byte is handed to the server) by route."""
    finished: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}
    running: dict[tuple[str, str], Any] = {}

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _UNMEASURED:
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        method, path = scope["method"], scope.get("path_template", scope["path"])
        status = 500  # unless a response starts: an exception escaping the route's own handler
        ended = 0.0

        async def send_noting_status(message: Message) -> None:
            nonlocal status, ended
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                ended = time.perf_counter()
            await send(message)

        gauge = running.get((method, path))
        if gauge is None:
            gauge = running[(method, path)] = _IN_PROGRESS.labels(method, path, "200", _APP_NAME)
        gauge.inc()
        try:
            await app(scope, receive, send_noting_status)
        finally:
            gauge.dec()
            children = finished.get((method, path, status))
            if children is None:
                labels = (method, path, str(status), _APP_NAME)
                children = finished[(method, path, status)] = (
                    _REQUESTS.labels(*labels), _DURATION.labels(*labels),
                    _ERRORS.labels(*labels) if status >= 500 else None,
                )
            count, duration, errors = children
            count.inc()
            duration.observe((ended or time.perf_counter()) - started)
            if errors is not None:
                errors.inc()

    return middleware


OUTBOX_DUE = Gauge("clinic_outbox_due_messages", "Outbox messages due and not yet handed to the queue")
OUTBOX_LAG = Gauge("clinic_outbox_lag_seconds", "How long the oldest due outbox message has waited")
POOL_OPEN = Gauge("clinic_db_pool_connections", "Database connections open in this process's pool")
POOL_IN_USE = Gauge("clinic_db_pool_in_use", "Database connections of this process's pool taken by a request or job")
POOL_MAX = Gauge("clinic_db_pool_max", "The pool's maximum size (DB_POOL_MAX)")


class _JobCounts(Collector):
    """Jobs by name and outcome, as read from Redis at the last scrape (every worker process counts there)."""

    def __init__(self) -> None:
        self.latest: dict[tuple[str, str], int] = {}

    def collect(self):  # type: ignore[no-untyped-def]
        family = CounterMetricFamily("clinic_jobs", "arq jobs run, by name and outcome", labels=["job", "outcome"])
        for (name, outcome), value in sorted(self.latest.items()):
            family.add_metric([name, outcome], value)
        yield family


_JOBS = _JobCounts()
REGISTRY.register(_JOBS)


def _scraper_authorised(request: Request, token: str) -> bool:
    if not token:
        return True
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    # Constant-time: the comparison must not tell a guesser how many leading characters were right.
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode())


@get("/metrics", include_in_schema=False)
async def prometheus_metrics(request: Request, state: State) -> Response:
    if not _scraper_authorised(request, state.get("metrics_token", "")):
        return error_response(401, "metrics_token_required", "GET /metrics needs the METRICS_TOKEN bearer token.",
                              headers={"WWW-Authenticate": "Bearer"})
    # Scrape-time reads: one indexed outbox query, one Redis HGETALL; a dependency that is down leaves
    # its figures at their last value rather than failing the scrape.
    try:
        due, lag = await metrics.outbox_backlog()
        OUTBOX_DUE.set(due)
        OUTBOX_LAG.set(lag)
    except Exception:  # the database being down is what /health/ready reports
        pass
    try:
        _JOBS.latest = await metrics.job_counts(state.redis)
    except Exception:
        pass
    usage = metrics.pool_usage()
    if usage is not None:
        POOL_OPEN.set(usage[0])
        POOL_IN_USE.set(usage[1])
        POOL_MAX.set(usage[2])
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


ROUTES = [prometheus_metrics]
