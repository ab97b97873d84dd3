"""One unit of work in its own transaction, retried when InnoDB picks it as a deadlock victim (edges only).

Routes and jobs call this; services never do (they take the caller's connection and never commit).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import OperationalError

from kernel.db import is_retryable, transaction

T = TypeVar("T")


async def in_transaction(work: Callable[[BaseDBAsyncClient], Awaitable[T]], *, attempts: int = 4) -> T:
    for attempt in range(attempts):
        try:
            async with transaction() as conn:
                return await work(conn)
        except OperationalError as exc:
            # A deadlock or lock-wait timeout rolled the whole transaction back: it is safe to run again.
            if attempt == attempts - 1 or not is_retryable(exc):
                raise
    raise AssertionError("unreachable")
