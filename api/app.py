"""The Litestar app factory: routes of every room, error mapping, OpenAPI, and the lifespan.

The lifespan connects the database and Redis, and on the embedded stack it also starts the
bundled Redis server and an arq worker (with the outbox relay) inside the API process.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

import structlog
from arq.connections import ArqRedis, RedisSettings
from arq.worker import Worker
from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

import rooms
from api import (
    booking,
    booking_admin,
    campaigns,
    console,
    crm,
    health,
    identity,
    mall,
    metrics,
    orders,
    points,
    referrals,
    reports,
    shop,
)
from api.console import OfflineSwaggerPlugin, page_security_middleware
from api.deps import provide_db
from api.errors import EXCEPTION_HANDLERS
from api.release import release_version
from api.openapi import document_errors, options_middleware
from api.strict import strict_input
from api.logging import configure_logging, request_id_middleware
from api.metrics import request_metrics_middleware
from kernel import db
from kernel.settings import Settings, get_settings, live_adapters, refuse_unsafe_production
from kernel.wechat.miniprogram import MiniProgram, build_miniprogram
from workers.embedded import EmbeddedWorker

log = structlog.get_logger(__name__)

_SHUTDOWN_STEP_SECONDS = 5.0


async def _bounded(what: str, step: Callable[[], Awaitable[Any]]) -> None:
    """Run one shutdown step for at most _SHUTDOWN_STEP_SECONDS; a step that fails or hangs is logged."""
    try:
        await asyncio.wait_for(step(), timeout=_SHUTDOWN_STEP_SECONDS)
    except asyncio.TimeoutError:
        log.warning("shutdown.step_timed_out", step=what, seconds=_SHUTDOWN_STEP_SECONDS)
    except Exception as exc:
        log.warning("shutdown.step_failed", step=what, error_type=type(exc).__name__)

ROUTE_MODULES = [
    health, metrics, identity, points, mall, booking, booking_admin, orders, shop, campaigns, referrals, crm, reports, console,
]

# Run inside the login transaction, in this order: the points account first, then the referral binding,
# then the acquisition source. Each is called as hook(conn, customer, created, referral_code, scene).
LOGIN_HOOKS = [points.open_points_account, referrals.bind_referral, crm.record_acquisition]


def _routes(settings: Settings) -> list[Any]:
    return [*(h for module in ROUTE_MODULES for h in module.ROUTES), *orders.ROUTES_WHEN(settings)]


def _openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Clinic mini-program API",
        version=release_version(),
        description=(
            "Backend of the clinic's WeChat mini-program. `/app/*` routes take a customer token "
            "(POST /app/auth/login), `/admin/*` routes a staff token (POST /admin/auth/login). "
            "Errors are always {code, message, detail}."
        ),
        path="/schema",
        render_plugins=[OfflineSwaggerPlugin(path="/")],
        components=Components(
            security_schemes={"BearerToken": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")}
        ),
    )


def _lifespan(
    settings: Settings, miniprogram: MiniProgram | None, run_worker: bool, worker_ctx: dict[str, Any] | None
) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """Start-up and shutdown: database, Redis (embedded when REDIS_URL is unset), WeChat, the worker.

    Every shutdown step is bounded: a dead Redis or killed database connections must not hold the
    process past its supervisor's patience (README, "Deploy")."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            redis_url = settings.redis.url
            if not redis_url:
                from kernel.embedded import EmbeddedRedis

                embedded_redis = EmbeddedRedis(settings.app.data_dir)
                stack.callback(embedded_redis.close)
                redis_url = embedded_redis.url
            if await db.init_db(settings.db):
                stack.push_async_callback(_bounded, "database", db.close_db)
            # No ping here: the API serves (and the outbox keeps jobs) while Redis is down.
            redis = ArqRedis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)
            stack.push_async_callback(_bounded, "redis", redis.aclose)
            app.state.redis = redis
            app.state.redis_url = redis_url
            app.state.miniprogram = miniprogram or build_miniprogram(settings.wechat)
            if miniprogram is None:
                stack.push_async_callback(_bounded, "miniprogram", app.state.miniprogram.aclose)
            app.state.customer_login_hooks = LOGIN_HOOKS
            app.state.rate_limit_enabled = settings.rate_limit.enabled
            app.state.adapters = live_adapters(settings)
            log.info("app.adapters", **app.state.adapters)
            embedded: EmbeddedWorker | None = None
            if run_worker:
                from workers.settings import worker_kwargs

                ctx = {"miniprogram": app.state.miniprogram, **(worker_ctx or {})}

                def make_worker() -> Worker:
                    # Each (re)start gets its own pool: arq closes its pool when the worker stops.
                    return Worker(
                        **worker_kwargs(redis_settings=RedisSettings.from_dsn(redis_url), ctx=dict(ctx))
                    )

                embedded = EmbeddedWorker(make_worker)
                embedded.start()
                stack.push_async_callback(embedded.stop, timeout=_SHUTDOWN_STEP_SECONDS)
                log.info("worker.embedded_started")
            app.state.embedded_worker = embedded
            yield

    return lifespan


def create_app(
    settings: Settings | None = None,
    *,
    miniprogram: MiniProgram | None = None,
    embedded_worker: bool | None = None,
    worker_ctx: dict[str, Any] | None = None,
) -> Litestar:
    settings = settings or get_settings()
    configure_logging(settings.app)
    # Before any route exists: production never mounts a sandbox adapter or runs without its secrets.
    refuse_unsafe_production(settings)
    rooms.install()
    run_worker = settings.worker.embedded if embedded_worker is None else embedded_worker
    lifespan = _lifespan(settings, miniprogram, run_worker, worker_ctx)
    app = Litestar(
        route_handlers=_routes(settings),
        dependencies={"db": Provide(provide_db, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        lifespan=[lifespan],
        middleware=[request_id_middleware, options_middleware, page_security_middleware,
                    request_metrics_middleware],
        before_request=strict_input,
        request_max_body_size=settings.app.max_request_body_bytes,
        openapi_config=_openapi_config() if settings.app.api_docs else None,
        debug=False,
    )
    if settings.app.api_docs:
        document_errors(app)
    app.state.metrics_token = settings.app.metrics_token
    # Exposed so tests can run the same start-up and shutdown around an in-loop ASGI client.
    app.state.clinic_lifespan = lifespan
    return app
