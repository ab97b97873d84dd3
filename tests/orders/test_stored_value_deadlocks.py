"""Concurrent stored-value spends by different customers must not deadlock on the ledger's unique `ref`.

A spend's ref (`spend:<order>`) is new, so a locking read of it (`SELECT ... FOR UPDATE` on a missing key)
takes a gap lock on the ref index; two purchases whose new refs fall into the same gap then each wait for
the other's gap lock to insert (InnoDB error 1213), although they share nothing. The checkout bench lost
hundreds of transactions per run to it, hidden by `run_in_transaction`'s re-run. These spends run without
the retry wrapper and count every deadlock.
"""

from __future__ import annotations

import asyncio
import secrets

from tortoise.exceptions import OperationalError, TransactionManagementError

from kernel.db import mysql_errno, transaction
from orders import stored_value
from orders.product_models import StoredValueAccount, StoredValueEntry
from tests.factories import make_customer
from tests.orders.shop_factories import give_stored_value

CUSTOMERS = 16
ROUNDS = 10
SPENDS_PER_CUSTOMER = 2
AMOUNT = 100
_DEADLOCK = 1213


async def _spend_once(customer_id: int, order_id: int) -> bool:
    """One spend in its own transaction, no retry; True when InnoDB rolled it back as a deadlock victim."""
    try:
        async with transaction() as conn:
            await stored_value.spend(conn, customer_id, order_id, AMOUNT)
    except (OperationalError, TransactionManagementError) as exc:
        if mysql_errno(exc) == _DEADLOCK:
            return True
        raise
    return False


async def test_spends_by_different_customers_never_deadlock():
    ids = [(await make_customer()).id for _ in range(CUSTOMERS)]
    for customer_id in ids:
        await give_stored_value(customer_id, AMOUNT * ROUNDS * SPENDS_PER_CUSTOMER)
    # Order ids next to each other, as real orders are: their new refs fall into one gap of the ref index.
    next_order = 10**12 + secrets.randbelow(10**9) * 1000
    deadlocks = attempts = 0
    for _ in range(ROUNDS):
        spends = []
        for customer_id in ids:
            for _ in range(SPENDS_PER_CUSTOMER):
                next_order += 1
                spends.append(_spend_once(customer_id, next_order))
        results = await asyncio.gather(*spends)
        attempts += len(results)
        deadlocks += sum(results)
    for customer_id in ids:  # the account equals its entries, whatever rolled back
        account = await StoredValueAccount.get(customer_id=customer_id)
        entries = await StoredValueEntry.filter(customer_id=customer_id)
        assert account.principal_fen == sum(e.principal_delta for e in entries) >= 0
        assert account.bonus_fen == sum(e.bonus_delta for e in entries) >= 0
    assert deadlocks == 0, f"{deadlocks} of {attempts} spends deadlocked"


async def test_a_ref_committed_after_the_snapshot_is_not_applied_twice():
    """The plain ref check cannot see a ref committed after this transaction's snapshot began; the unique key
    catches it and the balance change is taken back, so the effect still applies once."""
    customer = await make_customer()
    await give_stored_value(customer.id, 1000)
    order_id = 10**12 + secrets.randbelow(10**9)
    snapshot_taken, other_committed = asyncio.Event(), asyncio.Event()

    async def late() -> bool:
        async with transaction() as conn:
            await StoredValueAccount.get(customer_id=customer.id).using_db(conn)  # the snapshot starts here
            snapshot_taken.set()
            await other_committed.wait()
            return await stored_value._move(conn, customer.id, principal=-300, bonus=0, kind="spend",
                                            ref=f"spend:{order_id}", order_id=order_id)

    async def other() -> None:  # the same spend, on another connection, committed meanwhile
        await snapshot_taken.wait()
        async with transaction() as conn:
            await stored_value.spend(conn, customer.id, order_id, 300)
        other_committed.set()

    applied, _ = await asyncio.gather(late(), other())
    assert applied is False
    account = await StoredValueAccount.get(customer_id=customer.id)
    assert (account.principal_fen, account.bonus_fen) == (700, 0)
    assert await StoredValueEntry.filter(ref=f"spend:{order_id}").count() == 1
