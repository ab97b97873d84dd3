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


async def test_the_packed_overview_answers_what_the_orm_path_answers():
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
