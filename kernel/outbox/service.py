"""Writing to the outbox (inside the caller's transaction) and relaying rows to arq (after commit)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import structlog
from arq.connections import ArqRedis
from redis.exceptions import RedisError
from tortoise.backends.base.client import BaseDBAsyncClient

from kernel import clock
from kernel.batch import Batch, JsonArray
from kernel.outbox.models import OutboxMessage
from kernel.rows import RowInsert

log = structlog.get_logger(__name__)


def job_id_for(message: OutboxMessage) -> str:
    # arq refuses a second job with the same id while the first is queued or its result is kept,
    # so a row relayed twice (relay crashed between enqueue and marking) still runs once.
    # The creation instant (microseconds) joins the row id because ids restart at 1 in every fresh
    # database, and arq's job keys are shared by everything using the same Redis database: without it a
    # second environment (or a recreated database) would see its jobs refused as duplicates for a day.
    return f"outbox-{message.id}-{int(message.created_at.timestamp() * 1_000_000)}"


async def enqueue(
    conn: BaseDBAsyncClient, job_name: str, *args: Any, run_at: datetime | None = None
) -> OutboxMessage:
    """Record a job in the caller's transaction; it reaches arq only if that transaction commits."""
    # Hot writes (a group join, an order) enqueue on their way: parameterised SQL on MySQL/MariaDB, where
    # the ORM's create cost more CPU than the statement.
    return await _OUTBOX_ROW.insert(conn, job_name=job_name, args=list(args), run_at=run_at, created_at=clock.now())


def add_to_outbox(batch: Batch, job_name: str, *args: Any, run_at: datetime | None = None) -> None:
    """`enqueue` queued in a batch of statements (MySQL/MariaDB); args may be ids generated earlier in it."""
    _OUTBOX_ROW.add(batch, job_name=job_name, args=JsonArray(args), run_at=run_at, created_at=clock.now())


_OUTBOX_ROW = RowInsert(OutboxMessage)


async def relay_once(redis: ArqRedis, *, batch_size: int = 200, queue_name: str | None = None) -> int:
    """Move undelivered rows to arq, oldest first. Returns how many were delivered.

    Stops at the first Redis failure and leaves the rest for the next pass: nothing is lost while
    Redis is down, and order is kept as far as arq keeps it.
    """
    pending = await OutboxMessage.filter(delivered_at=None).order_by("id").limit(batch_size)
    delivered = 0
    for message in pending:
        try:
            await redis.enqueue_job(
                message.job_name,
                *message.args,
                _job_id=job_id_for(message),
                _defer_until=message.run_at,
                _queue_name=queue_name,
            )
        except (RedisError, OSError) as exc:
            await OutboxMessage.filter(id=message.id).update(
                attempts=message.attempts + 1, last_error=str(exc)[:500]
            )
            log.warning("outbox.relay_failed", message_id=message.id, job=message.job_name, error=str(exc))
            break
        # Conditional: a second relay racing this one marks it once; both enqueues were deduplicated.
        await OutboxMessage.filter(id=message.id, delivered_at=None).update(delivered_at=clock.now())
        delivered += 1
    if delivered:
        log.debug("outbox.relayed", count=delivered)
    return delivered


async def run_relay(
    redis: ArqRedis, stop: asyncio.Event, *, poll_seconds: float, batch_size: int, queue_name: str | None
) -> None:
    """The relay loop run by every worker process (and by the embedded stack)."""
    while not stop.is_set():
        try:
            delivered = await relay_once(redis, batch_size=batch_size, queue_name=queue_name)
        except Exception:  # a database hiccup must not kill the loop; the rows wait in the table
            log.exception("outbox.relay_error")
            delivered = 0
        if delivered < batch_size:
            try:
                await asyncio.wait_for(stop.wait(), timeout=poll_seconds)
            except asyncio.TimeoutError:
                pass


async def prune_delivered(older_than: timedelta = timedelta(days=7)) -> int:
    cutoff = clock.now() - older_than
    return await OutboxMessage.filter(delivered_at__lt=cutoff).delete()


async def oldest_undelivered_age() -> float:
    """Seconds the oldest message not yet handed to Redis has waited (0 when none): the relay hands delayed
    jobs over at once, so any undelivered row means the relay is behind (the readiness probe's figure)."""
    oldest = await OutboxMessage.filter(delivered_at=None).order_by("id").first().values("created_at")
    if not oldest:
        return 0.0
    return round((clock.now() - oldest["created_at"]).total_seconds(), 1)
