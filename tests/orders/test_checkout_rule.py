"""The checkout rule (points as cash) written by campaign staff: the first write of a fresh database, sent many
times at once, succeeds every time and leaves one row."""

from __future__ import annotations

import asyncio

import pytest

from kernel.db import transaction
from orders import checkout
from orders.product_models import CheckoutRule
from tests.factories import make_staff, staff_headers

N = 60


@pytest.fixture(autouse=True)
async def default_rule_after():
    """Other tests price with the default rule: leave none behind."""
    yield
    await CheckoutRule.all().delete()


async def test_many_first_writes_of_the_checkout_rule_at_once_all_succeed_and_leave_one_row(client):
    await CheckoutRule.all().delete()  # a database where nobody set the rule yet (the defaults apply)
    staff = await make_staff("campaign")
    bodies = [{"points_per_yuan": 100 + i, "points_max_share_bp": 4000 + i} for i in range(N)]
    answers = await asyncio.gather(*[client.put("/admin/shop/checkout-rule", json=body,
                                                headers=staff_headers(staff)) for body in bodies])
    assert [a.status_code for a in answers] == [200] * N, [a.text for a in answers if a.status_code != 200]
    rows = await CheckoutRule.all()
    assert len(rows) == 1 and rows[0].id == 1
    # The rule is one of the bodies sent, whole (never one body's rate with another's share).
    written = {"points_per_yuan": rows[0].points_per_yuan, "points_max_share_bp": rows[0].points_max_share_bp}
    assert written in bodies
    read = await client.get("/admin/shop/checkout-rule", headers=staff_headers(staff))
    assert read.json() == written
    # Each answer is the rule as that request wrote it.
    assert all(a.json() in bodies for a in answers)


async def test_first_writes_at_once_each_commit_first_time_without_a_deadlock_or_duplicate_key():
    """Each write in one transaction, not run again on a deadlock: the route's retry hides a deadlock victim,
    and a write that only passes by being run again can run out of attempts (a 500)."""
    await CheckoutRule.all().delete()

    async def write(i: int) -> None:
        async with transaction() as conn:
            await checkout.set_checkout_rule(conn, points_per_yuan=100 + i, points_max_share_bp=4000 + i)

    outcomes = await asyncio.gather(*[write(i) for i in range(N)], return_exceptions=True)
    assert [o for o in outcomes if o is not None] == []
    assert await CheckoutRule.all().count() == 1
