"""Stored value spent by concurrent orders when the balance is part principal, part bonus: every order the
balance covers is covered, principal first, and the account always equals its ledger."""

from __future__ import annotations

import asyncio

from orders import stored_value
from tests.factories import customer_headers, make_customer
from tests.orders.shop_factories import assert_ledgers_hold, give_stored_value, make_product


async def test_concurrent_orders_spend_principal_then_bonus_without_spurious_refusals(client):
    customer = await make_customer()
    product = await make_product("product", price_fen=1000)
    await give_stored_value(customer.id, 2000, 4000)
    body = {"items": [{"product_id": product.id}], "use_stored_value": True}
    answers = await asyncio.gather(*[client.post("/app/orders", json=body, headers=customer_headers(customer))
                                     for _ in range(12)])
    assert all(a.status_code == 201 for a in answers), [a.text for a in answers if a.status_code != 201]
    covered = sorted(a.json()["stored_value_fen"] for a in answers)
    # 6,000 fen of stored value: six orders paid by it in full, six with nothing left to use.
    assert covered == [0] * 6 + [1000] * 6, covered
    assert await stored_value.balance_of(customer.id) == (0, 0)
    await assert_ledgers_hold([customer.id])


async def test_a_spend_after_an_earlier_read_sees_the_balance_the_previous_holder_left():
    """A transaction that read anything before taking the customer lock (checkout reads products and the
    quote first) used to split the spend from its older snapshot: principal it no longer had, refused
    although the bonus covered it."""
    from kernel.db import run_in_transaction

    customer = await make_customer()
    await give_stored_value(customer.id, 1000, 1000)
    first_read, other_spent = asyncio.Event(), asyncio.Event()

    async def late_spender(conn):
        await stored_value.balance(conn, customer.id)  # the snapshot: 1000 principal, 1000 bonus
        first_read.set()
        await other_spent.wait()
        await stored_value.spend(conn, customer.id, 900_000_001 + customer.id, 1000)

    async def other(conn):
        await stored_value.spend(conn, customer.id, 900_000_000 + customer.id * 7, 1000)

    late = asyncio.create_task(run_in_transaction(late_spender))
    await first_read.wait()
    await run_in_transaction(other)
    other_spent.set()
    await late
    assert await stored_value.balance_of(customer.id) == (0, 0)
    await assert_ledgers_hold([customer.id])
