"""Concurrent spends by different customers with adjacent ids must not deadlock on the lots' index.

The spend path locks a customer's spendable lots and then lowers their `remaining`. When the lots were
locked through an index keyed on `remaining`, the locking scan's next-key locks reached into the
neighbouring customer's index range and the update moved the row inside that index, so customers that
share nothing deadlocked each other (InnoDB error 1213; `run_in_transaction` hid it by re-running the
whole transaction). These transactions run without the retry wrapper and count every deadlock.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import datetime, timedelta, timezone

from tortoise.exceptions import OperationalError, TransactionManagementError

from kernel import clock
from kernel.db import mysql_errno, transaction
from points_mall.service import spend_points
from tests.factories import make_customer
from tests.points_mall.factories import assert_ledger_consistent, give_points

CUSTOMERS = 16  # adjacent ids: created one after the other
ROUNDS = 12
SPENDS_PER_CUSTOMER = 2  # per round, each taking from more than one lot
POINTS_PER_SPEND = 7
_DEADLOCK = 1213


async def _customers_with_lots() -> list[int]:
    ids = [(await make_customer()).id for _ in range(CUSTOMERS)]
    start = datetime(2026, 1, 10, 4, tzinfo=timezone.utc)
    for month in range(4):  # four lots each, expiring in different months
        clock.set_now(start + timedelta(days=31 * month))
        for customer_id in ids:
            await give_points(customer_id, 5 + ROUNDS * SPENDS_PER_CUSTOMER * POINTS_PER_SPEND, "t:" + secrets.token_hex(6))
    clock.set_now(start + timedelta(days=31 * 4))
    return ids


async def _spend_once(customer_id: int) -> bool:
    """One spend in its own transaction, no retry; True when InnoDB rolled it back as a deadlock victim."""
    try:
        async with transaction() as conn:
            await spend_points(conn, customer_id=customer_id, points=POINTS_PER_SPEND, kind="redemption",
                               ref="t:" + secrets.token_hex(8), reason="deadlock probe")
    except (OperationalError, TransactionManagementError) as exc:
        if mysql_errno(exc) == _DEADLOCK:
            return True
        raise
    return False


async def test_spends_by_neighbouring_customers_never_deadlock():
    ids = await _customers_with_lots()
    deadlocks = 0
    attempts = 0
    for _ in range(ROUNDS):
        results = await asyncio.gather(*[_spend_once(customer_id) for customer_id in ids
                                         for _ in range(SPENDS_PER_CUSTOMER)])
        attempts += len(results)
        deadlocks += sum(results)
    for customer_id in ids:  # balance == sum(ledger) == sum(lots) >= 0 whatever rolled back
        await assert_ledger_consistent(customer_id)
    assert deadlocks == 0, f"{deadlocks} of {attempts} spends deadlocked"
