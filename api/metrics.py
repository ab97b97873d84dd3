"""GET /metrics in Prometheus' text format: request latency by route template (Litestar's Prometheus
middleware), jobs run and failed by name, the outbox's backlog and lag, and the database pool's usage.

With METRICS_TOKEN set (production refuses to start without it) only `Authorization: Bearer <token>` reads them.
"""

from __future__ import annotations

import hmac

from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.plugins.prometheus import PrometheusConfig
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from api.errors import error_response
from kernel import metrics

# Request latency and counts by method, route template (`/app/groups/{group_id:int}/join`) and status.
PROMETHEUS = PrometheusConfig(
    app_name="clinic",
    prefix="clinic",
    group_path=True,
    exclude=["/metrics"],
    buckets=[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
)

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
