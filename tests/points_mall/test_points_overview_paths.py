"""The points overview's one-statement read (MariaDB, its values packed in one JSON column) answers what the
ORM path answers, for customers in every state the overview shows."""

from __future__ import annotations

import secrets
from datetime import timedelta

from kernel import clock
from kernel.db import transaction
from points_mall import reports
from points_mall.models import PointsAccount, PointsLot
from points_mall.service import record_consumption
from points_mall.tiers import record_qualified_referral
from tests.factories import make_customer
from tests.points_mall.factories import funded_customer, give_points


async def _customers_in_every_state():
    """No account; plain; lots expiring soon, later and already; spend and a referral; a shortfall."""
    nobody = await make_customer()  # no points account: zeros, no tier, no expiry
    plain = await funded_customer(1_000)

    expiring = await funded_customer(300)  # a lot due within the reminder horizon, one later, one already due
    await give_points(expiring.id, 200, "grant:" + secrets.token_hex(4))
    await give_points(expiring.id, 50, "grant:" + secrets.token_hex(4))
    lots = await PointsLot.filter(customer_id=expiring.id).order_by("id")
    now = clock.now()
    await PointsLot.filter(id=lots[0].id).update(expires_at=now + timedelta(days=3, microseconds=123_456))
    await PointsLot.filter(id=lots[1].id).update(expires_at=now + timedelta(days=300))
    await PointsLot.filter(id=lots[2].id).update(expires_at=now - timedelta(minutes=1))

    spender = await make_customer()  # spend in the window (pending points) and a qualified referral
    async with transaction() as conn:
        await record_consumption(conn, customer_id=spender.id, amount_fen=12_345, source="order",
                                 external_ref="order:" + secrets.token_hex(4))
        await record_qualified_referral(conn, referrer_id=spender.id, ref="referral:" + secrets.token_hex(4))
    owing = await funded_customer(10)
    await PointsAccount.filter(customer_id=owing.id).update(shortfall=40)
    return nobody, plain, expiring, spender, owing, lots, now


async def test_the_packed_overview_answers_what_the_orm_path_answers():
    nobody, plain, expiring, spender, owing, lots, now = await _customers_in_every_state()
    clock.set_now(clock.now())  # both paths read the same instant (the horizon is now + the reminder days)
    answers = {}
    async with transaction() as conn:
        assert conn.capabilities.dialect == "mysql"  # the suite runs on MariaDB: the packed read is under test
        for customer in (nobody, plain, expiring, spender, owing):
            packed = await reports.overview(conn, customer.id)
            general = await reports._overview_orm(conn, customer.id)
            assert packed == general, customer.id
            answers[customer.id] = packed

    # The states are the ones meant, so the comparison covers each value.
    assert answers[nobody.id]["balance"] == 0 and answers[nobody.id]["next_expiry_at"] is None
    assert answers[plain.id]["spendable"] == 1_000
    soonest = answers[expiring.id]
    assert soonest["expiring_soon"] == lots[0].remaining and soonest["spendable"] == lots[0].remaining + lots[1].remaining
    assert soonest["next_expiry_at"] == (now + timedelta(days=3, microseconds=123_456))
    assert soonest["next_expiry_at"].utcoffset() is not None
    assert answers[spender.id]["pending"] > 0
    assert answers[spender.id]["standing"] == {"spend_fen": 12_345, "referrals": 1}
    assert answers[owing.id]["shortfall"] == 40


async def test_customers_asking_at_once_are_read_together_and_each_gets_their_own_overview(client):
    """GET /app/points asked by many customers in the same moment: one statement serves them (reports.own_overview),
    and each answer is the one that customer gets asking alone; an erased customer in the crowd is refused alone."""
    import asyncio

    from kernel.identity.models import Customer
    from tests.factories import customer_headers

    customers = [*(await _customers_in_every_state())[:5], await funded_customer(77)]
    erased = await funded_customer(5)
    await Customer.filter(id=erased.id).update(deleted_at=clock.now())
    clock.set_now(clock.now())  # alone or together, the same instant
    alone = {c.id: (await client.get("/app/points", headers=customer_headers(c))).json() for c in customers}

    crowd = [*customers, erased, *customers[:3]]  # the first three twice
    calls_before = reports._READ_TOGETHER.calls
    answers = await asyncio.gather(*[client.get("/app/points", headers=customer_headers(c)) for c in crowd])
    assert 1 <= reports._READ_TOGETHER.calls - calls_before < len(crowd) / 3, "the crowd should share statements"
    for customer, answer in zip(crowd, answers):
        if customer is erased:
            assert answer.status_code == 401 and answer.json()["code"] == "account_erased"
        else:
            assert answer.status_code == 200 and answer.json() == alone[customer.id], customer.id
    assert alone[customers[-1].id]["spendable"] == 77


async def test_a_read_asked_after_a_write_was_answered_sees_it_even_in_a_crowd(client):
    import asyncio

    from tests.factories import customer_headers

    customers = [await funded_customer(100) for _ in range(4)]
    assert (await client.post("/app/check-ins", headers=customer_headers(customers[0]))).status_code == 201
    answers = await asyncio.gather(*[client.get("/app/points", headers=customer_headers(c)) for c in customers])
    assert [a.json()["balance"] > 100 for a in answers] == [True, False, False, False]
