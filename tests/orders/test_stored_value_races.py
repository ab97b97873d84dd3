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
