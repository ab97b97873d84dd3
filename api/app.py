"""The Litestar app factory: routes of every room, error mapping, OpenAPI, and the lifespan.

The lifespan connects the database and Redis, and on the embedded stack it also starts the
bundled Redis server and an arq worker (with the outbox relay) inside the API process.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

import structlog
from arq.connections import ArqRedis, RedisSettings
from arq.worker import Worker
from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

import rooms
from api import booking, campaigns, health, identity, mall, orders, points, referrals
from api.deps import provide_db
from api.errors import EXCEPTION_HANDLERS
from api.release import release_version
from api.openapi import document_errors
from api.logging import configure_logging, request_id_middleware
from kernel import db
from kernel.settings import Settings, get_settings
from kernel.wechat.miniprogram import MiniProgram, build_miniprogram

log = structlog.get_logger(__name__)

ROUTE_MODULES = [health, identity, points, mall, booking, orders, campaigns, referrals]

# Run inside the login transaction, in this order: the points account first, then the referral binding.
LOGIN_HOOKS = [points.open_points_account, referrals.bind_referral]


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
        render_plugins=[SwaggerRenderPlugin(path="/")],
        components=Components(
            security_schemes={"BearerToken": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")}
        ),
        security=[{"BearerToken": []}],
    )


@asynccontextmanager
async def _embedded_worker(redis_url: str, ctx: dict[str, Any]) -> AsyncIterator[None]:
    """An arq worker inside the API process (the embedded stack), stopped with the app."""
    from workers.settings import worker_kwargs

    # The worker gets its own pool: arq closes its pool when the worker stops.
    worker = Worker(**worker_kwargs(redis_settings=RedisSettings.from_dsn(redis_url), ctx=ctx))
    worker_task = asyncio.create_task(worker.async_run())
    log.info("worker.embedded_started")
    try:
        yield
    finally:
        await worker.close()
        worker_task.cancel()
        try:
            await worker_task
        except (asyncio.CancelledError, Exception):
            pass


def _lifespan(
    settings: Settings, miniprogram: MiniProgram | None, run_worker: bool, worker_ctx: dict[str, Any] | None
) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """Start-up and shutdown: database, Redis (embedded when REDIS_URL is unset), WeChat, the worker."""

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
                stack.push_async_callback(db.close_db)
            # No ping here: the API serves (and the outbox keeps jobs) while Redis is down.
            redis = ArqRedis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)
            stack.push_async_callback(redis.aclose)
            app.state.redis = redis
            app.state.redis_url = redis_url
            app.state.miniprogram = miniprogram or build_miniprogram(settings.wechat)
            if miniprogram is None:
                stack.push_async_callback(app.state.miniprogram.aclose)
            app.state.customer_login_hooks = LOGIN_HOOKS
            app.state.rate_limit_enabled = settings.rate_limit.enabled
            if run_worker:
                ctx = {"miniprogram": app.state.miniprogram, **(worker_ctx or {})}
                await stack.enter_async_context(_embedded_worker(redis_url, ctx))
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
    rooms.install()
    run_worker = settings.worker.embedded if embedded_worker is None else embedded_worker
    lifespan = _lifespan(settings, miniprogram, run_worker, worker_ctx)
    app = Litestar(
        route_handlers=_routes(settings),
        dependencies={"db": Provide(provide_db, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        lifespan=[lifespan],
        middleware=[request_id_middleware],
        request_max_body_size=settings.app.max_request_body_bytes,
        openapi_config=_openapi_config(),
        debug=False,
    )
    document_errors(app)
    # Exposed so tests can run the same start-up and shutdown around an in-loop ASGI client.
    app.state.clinic_lifespan = lifespan
    return app
