"""Factories and helpers of the orders tests: orders, a counting line kind, and arq burst runs."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from collections import Counter
from datetime import datetime, timezone
from typing import Any

import pymysql
from arq.constants import job_key_prefix
from tortoise.exceptions import OperationalError
from tortoise.expressions import Q

from orders import service
from orders.hooks import LineKind, LineOutcome, delivered, register_line_kinds
from orders.models import Order
from kernel.db import transaction
from kernel.outbox.models import OutboxMessage
from kernel.outbox.service import relay_once
from kernel.settings import get_settings
from tests.factories import make_customer, run_worker

QUEUE = get_settings().redis.queue_name

# What the "test_item" line kind saw, per order id: proves hooks ran once.
SEEN: dict[str, Counter] = {"paid": Counter(), "released": Counter(), "refunded": Counter()}


async def _paid(conn, order, line) -> LineOutcome:
    SEEN["paid"][order.id] += 1
    return delivered(order)


async def _released(conn, order, line) -> LineOutcome:
    SEEN["released"][order.id] += 1
    return LineOutcome()


async def _refunded(conn, order, line, refund) -> None:
    SEEN["refunded"][order.id] += 1


register_line_kinds([LineKind("test_item", release=_released, on_paid=_paid, on_refunded=_refunded)])


async def make_order(customer=None, *, unit_price_fen: int = 9900, quantity: int = 1,
                     pay_by: datetime | None = None, kind: str = "test_item") -> Order:
    customer = customer or await make_customer()
    async with transaction() as conn:
        return await service.create_order(
            conn, customer_id=customer.id, description="Hydrafacial 水光",
            lines=[service.LineSpec(kind=kind, title="Hydrafacial", quantity=quantity, unit_price_fen=unit_price_fen)],
            pay_by=pay_by,
        )


async def discard_future_jobs(redis, *, slack_seconds: float = 1.0) -> int:
    """Drop jobs deferred into the future (payment windows, group deadlines) from the arq queue.

    arq's burst mode waits for deferred jobs; a test that cares about one runs it with the clock
    set so it is due, or calls the job directly. Undelivered outbox rows are relayed first.
    """
    while await relay_once(redis, queue_name=QUEUE):
        pass
    horizon = (time.time() + slack_seconds) * 1000
    future = await redis.zrangebyscore(QUEUE, horizon, "+inf")
    if future:
        await redis.zrem(QUEUE, *future)
        await redis.delete(*[job_key_prefix + (j.decode() if isinstance(j, bytes) else j) for j in future])
    return len(future)


async def run_jobs(redis, *, ctx: dict[str, Any] | None = None, rounds: int = 6, **overrides: Any):
    """Relay the outbox, drop future-deferred jobs, run a burst worker until the queue is empty; again
    while the jobs wrote new outbox rows that are due (the test worker does not run the relay loop)."""
    context = {"pay_retry_base_seconds": 0.01, **(ctx or {})}
    totals = SimpleNamespace(jobs_complete=0, jobs_failed=0, jobs_retried=0)
    for _ in range(rounds):
        await discard_future_jobs(redis)
        # Jobs can defer others far ahead (a group's deadline job): keep dropping those while it runs.
        janitor = asyncio.create_task(_keep_discarding(redis))
        try:
            worker = await run_worker(redis, ctx=context, **overrides)
        finally:
            janitor.cancel()
        for name in vars(totals):
            setattr(totals, name, getattr(totals, name) + getattr(worker, name))
        due = await OutboxMessage.filter(delivered_at=None).filter(
            Q(run_at=None) | Q(run_at__lte=datetime.now(timezone.utc))).exists()
        if not due:
            break
    return totals


async def _keep_discarding(redis) -> None:
    while True:
        await asyncio.sleep(0.05)
        horizon = (time.time() + 5) * 1000
        future = await redis.zrangebyscore(QUEUE, horizon, "+inf")
        if future:
            await redis.zrem(QUEUE, *future)


async def enqueue_now(redis, job_name: str, *args: Any, job_id: str | None = None) -> None:
    await redis.enqueue_job(job_name, *args, _job_id=job_id, _queue_name=QUEUE)


def deadlock() -> OperationalError:
    """What Tortoise raises when InnoDB picks the transaction as a deadlock victim (errno 1213)."""
    try:
        raise pymysql.err.OperationalError(1213, "Deadlock found when trying to get lock")
    except pymysql.err.OperationalError as exc:
        error = OperationalError(exc)
        error.__cause__ = exc
        return error


async def assert_refunded_in_full_by_a_second_refund(order_id: int, first_refund_id: int):
    """The order ends refunded in full by one more refund than `first_refund_id` (one that ended unpaid, asked
    again once), which WeChat Pay paid. Returns that second refund."""
    from orders.models import Order, OrderStatus, Refund, RefundStatus

    current = await Order.get(id=order_id)
    assert (current.status, current.refunded_fen) == (OrderStatus.refunded, current.total_fen), current.status
    again = await Refund.filter(order_id=order_id).exclude(id=first_refund_id)
    assert len(again) == 1 and again[0].status == RefundStatus.succeeded, again
    return again[0]
