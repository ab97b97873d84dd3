"""Operational figures for /metrics: jobs run and failed by name (counted in Redis, so every worker
process adds to one total), the outbox's backlog and lag, and the database pool's usage."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from arq import Retry
from redis.exceptions import RedisError
from tortoise import connections
from tortoise.expressions import Q

from kernel import clock
from kernel.outbox.models import OutboxMessage
from kernel.settings import get_settings

log = structlog.get_logger(__name__)

OUTCOMES = ("succeeded", "failed", "retried")


def jobs_key() -> str:
    # Per queue, so test runs and benchmark runs sharing one Redis keep their own totals.
    return f"{get_settings().redis.queue_name}:metrics:jobs"


async def _count(redis: Any, name: str, outcome: str) -> None:
    try:
        await redis.hincrby(jobs_key(), f"{name}|{outcome}", 1)
    except (RedisError, OSError) as exc:  # a lost count never fails the job it counts
        log.warning("metrics.job_count_lost", job=name, error=type(exc).__name__)


def _counted(name: str, coroutine: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(coroutine)
    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        try:
            result = await coroutine(ctx, *args, **kwargs)
        except Retry:
            await _count(ctx["redis"], name, "retried")
            raise
        except asyncio.CancelledError:  # arq's timeout or shutdown: counted by arq, not by us
            raise
        except Exception:
            await _count(ctx["redis"], name, "failed")
            raise
        await _count(ctx["redis"], name, "succeeded")
        return result

    return run


def counted_jobs(jobs: list[Any]) -> list[Any]:
    """arq Functions or CronJobs, each counting its outcomes under its name."""
    return [dataclasses.replace(job, coroutine=_counted(job.name, job.coroutine)) for job in jobs]


async def job_counts(redis: Any) -> dict[tuple[str, str], int]:
    raw = await redis.hgetall(jobs_key())
    counts: dict[tuple[str, str], int] = {}
    for field, value in raw.items():
        name, _, outcome = (field.decode() if isinstance(field, bytes) else field).rpartition("|")
        counts[(name, outcome)] = int(value)
    return counts


async def outbox_backlog() -> tuple[int, float]:
    """Undelivered messages that are due, and how long the oldest of them has waited (seconds)."""
    now = clock.now()
    due = OutboxMessage.filter(Q(run_at=None) | Q(run_at__lte=now), delivered_at=None)
    count = await due.count()
    oldest = await due.order_by("id").first().values("created_at", "run_at") if count else None
    if not oldest:
        return count, 0.0
    since = max(oldest["created_at"], oldest["run_at"] or oldest["created_at"])
    return count, max(0.0, (now - since).total_seconds())


def pool_usage() -> tuple[int, int, int] | None:
    """(open, in use, maximum) connections of the database pool; None where there is no pool (SQLite)."""
    pool = getattr(connections.get("default"), "_pool", None)
    if pool is None or not hasattr(pool, "freesize"):
        return None
    return pool.size, pool.size - pool.freesize, pool.maxsize
