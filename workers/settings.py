"""The arq WorkerSettings: every job of every room, the cron schedule, start-up and shutdown.

Production: `arq workers.settings.WorkerSettings` (any number of worker processes). Each worker
also runs the outbox relay loop; relaying twice is harmless because the arq job id is the outbox id.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from arq.connections import RedisSettings

import rooms
from kernel import db
from kernel.outbox.service import run_relay
from kernel.settings import get_settings, live_adapters, refuse_unsafe_production
from kernel.wechat.miniprogram import build_miniprogram
from workers import registry
from workers.heartbeat import HEARTBEAT_SECONDS, new_heartbeat_key

log = structlog.get_logger(__name__)


async def startup(ctx: dict[str, Any]) -> None:
    settings = get_settings()
    # A separate worker process is a production start too: same refusals as the API.
    refuse_unsafe_production(settings)
    log.info("worker.adapters", **live_adapters(settings))
    rooms.install()
    ctx["settings"] = settings
    # In the embedded stack and in tests the process has already initialised the database.
    ctx["owns_db"] = await db.init_db()
    if "miniprogram" not in ctx:
        ctx["miniprogram"] = build_miniprogram(settings.wechat)
        ctx["owns_miniprogram"] = True
    if ctx.get("run_relay", True):
        stop = asyncio.Event()
        ctx["relay_stop"] = stop
        ctx["relay_task"] = asyncio.create_task(
            run_relay(
                ctx["redis"],
                stop,
                poll_seconds=settings.worker.outbox_poll_seconds,
                batch_size=settings.worker.outbox_batch_size,
                queue_name=settings.redis.queue_name,
            )
        )


async def shutdown(ctx: dict[str, Any]) -> None:
    # Idempotent: the embedded worker's supervisor calls it again when arq's own close() failed half-way.
    if "relay_stop" in ctx:
        ctx.pop("relay_stop").set()
        await ctx.pop("relay_task")
    if ctx.pop("owns_miniprogram", False):
        await ctx["miniprogram"].aclose()
    if ctx.pop("owns_db", False):
        await db.close_db()


class WorkerSettings:
    functions = registry.functions()
    cron_jobs = registry.cron_jobs()
    on_startup = startup
    on_shutdown = shutdown
    queue_name = get_settings().redis.queue_name
    # Results are kept a day so a job id relayed twice within that time is refused by arq.
    keep_result = 24 * 3600
    max_jobs = 20
    job_timeout = 300
    redis_settings = RedisSettings.from_dsn(get_settings().redis.url or "redis://127.0.0.1:6379/0")
    # arq refreshes this key from its poll loop; /health/ready reads every worker's (workers/heartbeat.py).
    health_check_interval = HEARTBEAT_SECONDS
    health_check_key = new_heartbeat_key(get_settings().redis.queue_name)


def worker_kwargs(**overrides: Any) -> dict[str, Any]:
    """Arguments for building an arq Worker in-process (embedded stack and tests)."""
    kwargs: dict[str, Any] = dict(
        functions=registry.functions(),
        cron_jobs=registry.cron_jobs(),
        on_startup=startup,
        on_shutdown=shutdown,
        queue_name=get_settings().redis.queue_name,
        keep_result=WorkerSettings.keep_result,
        max_jobs=WorkerSettings.max_jobs,
        job_timeout=WorkerSettings.job_timeout,
        handle_signals=False,
        health_check_interval=HEARTBEAT_SECONDS,
    )
    kwargs.update(overrides)
    kwargs.setdefault("health_check_key", new_heartbeat_key(kwargs["queue_name"]))
    return kwargs
