"""Helpers for arq job functions of every room: one transaction per job, deadlocks handed back to arq."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from arq import Retry
from tortoise.exceptions import OperationalError, TransactionManagementError

from kernel.db import is_retryable, run_in_transaction

T = TypeVar("T")


async def run_job_transaction(
    ctx: dict[str, Any],
    work: Callable[..., Awaitable[T]],
    *args: Any,
    attempts: int = 4,
    retry_defer: float | None = None,
) -> T:
    """The one way a job reaches the database: `work(conn, *args)` in one transaction.

    A deadlock is run again at once (the transaction was rolled back whole); one that outlives the
    quick retries becomes arq's Retry. Without that the job would fail for good, and nothing else
    re-runs most jobs' side effects.
    """
    try:
        return await run_in_transaction(lambda conn: work(conn, *args), attempts=attempts)
    except (OperationalError, TransactionManagementError) as exc:
        if not is_retryable(exc):
            raise
        raise Retry(defer=ctx.get("job_try", 1) if retry_defer is None else retry_defer) from exc
