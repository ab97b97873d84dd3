"""The shelf's two-statement standing (MariaDB) gives every customer the same reasons as the ORM path."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta

from tortoise import connections

from kernel import clock
from kernel.db import transaction
from points_mall import mall
from points_mall.models import MallRedemption, MemberTier, PointsAccount, PointsLot
from tests.factories import make_customer
from tests.points_mall.factories import funded_customer, make_item


async def _tier(level: int, *, active: bool = True) -> MemberTier:
    now = clock.now()
    return await MemberTier.create(name="Shelf " + secrets.token_hex(4), level=level, is_active=active,
                                   created_at=now, updated_at=now)


async def _redeem(customer_id: int, item_id: int, quantity: int = 1) -> MallRedemption:
    async with transaction() as conn:
        redemption, _ = await mall.redeem(conn, customer_id=customer_id, item_id=item_id, quantity=quantity,
                                          idempotency_key="k-" + secrets.token_hex(8))
    return redemption


async def test_fast_standing_gives_the_general_paths_reasons(client):
    base = 700_000 + secrets.randbelow(100_000) * 3  # levels are unique across the test database
    silver, gold, retired = await _tier(base), await _tier(base + 1), await _tier(base + 2, active=False)
    plain = await make_item(points_price=100, stock_total=50)
    silver_only = await make_item(points_price=100, stock_total=50, min_tier_level=silver.level)
    gold_only = await make_item(points_price=100, stock_total=50, min_tier_level=gold.level)
    once = await make_item(points_price=100, stock_total=50, limit_per_customer=2)
    monthly = await make_item(points_price=100, stock_total=50, limit_per_month=1)
    sold_out = await make_item(points_price=100, stock_total=1)
    dear = await make_item(points_price=5_000, stock_total=50)
    items = [plain, silver_only, gold_only, once, monthly, sold_out, dear]

    nobody = await make_customer()  # no points account at all
    short = await funded_customer(50)
    silver_member = await funded_customer(1_000)
    await PointsAccount.filter(customer_id=silver_member.id).update(tier_id=silver.id)
    retired_member = await funded_customer(1_000)  # a tier that is no longer active counts as none
    await PointsAccount.filter(customer_id=retired_member.id).update(tier_id=retired.id)

    at_limit = await funded_customer(10_000)
    await _redeem(at_limit.id, once.id, 2)
    await _redeem(at_limit.id, monthly.id)
    await _redeem(at_limit.id, sold_out.id)  # takes the last unit

    last_month = await funded_customer(10_000)  # held before this month: the monthly limit is free again
    earlier = await _redeem(last_month.id, monthly.id)
    await MallRedemption.filter(id=earlier.id).update(created_at=mall.month_bounds(clock.local_today())[0]
                                                      - timedelta(days=3))
    await _redeem(last_month.id, once.id)
    partly_cancelled = await _redeem(last_month.id, plain.id, 3)
    await MallRedemption.filter(id=partly_cancelled.id).update(cancelled_quantity=2)

    expired = await funded_customer(5_100)  # one lot past its date, not yet expired by the job
    lot = await PointsLot.filter(customer_id=expired.id).first()
    await PointsLot.filter(id=lot.id).update(expires_at=clock.now() - timedelta(minutes=1))

    customers = [nobody, short, silver_member, retired_member, at_limit, last_month, expired]
    item_ids = [item.id for item in items]
    shelf = {item.id: item for item in await mall.MallItem.filter(id__in=item_ids)}
    now = clock.now()
    seen: dict[int, dict[int, list[str]]] = {}
    async with transaction() as conn:
        assert conn.capabilities.dialect == "mysql"  # the suite runs on MariaDB: the fast path is under test
        for customer in customers:
            fast = await mall.standing_sql(conn, customer.id, item_ids)
            general = await mall.standing_general(conn, customer.id, item_ids)
            assert (fast.points, fast.tier_level) == (general.points, general.tier_level), customer.id
            for item_id in item_ids:
                assert fast.held_total.get(item_id, 0) == general.held_total.get(item_id, 0)
                assert fast.held_month.get(item_id, 0) == general.held_month.get(item_id, 0)
            reasons = {}
            for item_id, item in shelf.items():
                args = dict(now=now, points=fast.points, tier_level=fast.tier_level,
                            held_total=fast.held_total.get(item_id, 0), held_month=fast.held_month.get(item_id, 0))
                reasons[item_id] = mall.why_not(item, **args)
                assert reasons[item_id] == mall.why_not(item, now=now, points=general.points,
                                                        tier_level=general.tier_level,
                                                        held_total=general.held_total.get(item_id, 0),
                                                        held_month=general.held_month.get(item_id, 0))
            seen[customer.id] = reasons
            views = await mall.items_for_customer(conn, customer.id, [shelf[i] for i in item_ids])
            assert {item.id: why for item, why in views} == reasons  # what the route serves

    # Outside a transaction (the shelf route's way) the customers asking at once are read by one statement, and
    # each still gets their own reasons.
    calls = mall._READ_TOGETHER.calls
    together = await asyncio.gather(*[
        mall.items_for_customer(connections.get("default"), c.id, [shelf[i] for i in item_ids]) for c in customers])
    assert 1 <= mall._READ_TOGETHER.calls - calls < len(customers) / 2
    for customer, views in zip(customers, together):
        assert {item.id: why for item, why in views} == seen[customer.id], customer.id

    # The states are the ones meant (so the comparison above covers each reason).
    assert seen[nobody.id][plain.id] == ["insufficient_points"]
    assert seen[short.id][plain.id] == ["insufficient_points"]
    assert seen[silver_member.id][silver_only.id] == [] and seen[silver_member.id][gold_only.id] == ["tier_required"]
    assert seen[retired_member.id][silver_only.id] == ["tier_required"]
    assert seen[at_limit.id][once.id] == ["limit_reached"] and seen[at_limit.id][monthly.id] == ["limit_reached"]
    assert seen[at_limit.id][sold_out.id] == ["out_of_stock"]
    assert seen[last_month.id][monthly.id] == [] and seen[last_month.id][once.id] == []
    assert seen[expired.id][dear.id] == ["insufficient_points"]
    assert seen[silver_member.id][dear.id] == ["insufficient_points"]


async def test_customers_asking_for_the_shelf_at_once_each_get_their_own_and_an_erased_one_is_refused(client):
    from kernel.identity.models import Customer
    from tests.factories import customer_headers

    await make_item(points_price=300, stock_total=50)
    customers = [await funded_customer(points) for points in (100, 300, 1_000, 5)]
    erased = await funded_customer(1_000)
    await Customer.filter(id=erased.id).update(deleted_at=clock.now())
    alone = {c.id: (await client.get("/app/mall/items", headers=customer_headers(c))).json() for c in customers}

    crowd = [customers[0], erased, *customers, customers[2]]
    calls = mall._READ_TOGETHER.calls
    answers = await asyncio.gather(*[client.get("/app/mall/items", headers=customer_headers(c)) for c in crowd])
    assert 1 <= mall._READ_TOGETHER.calls - calls < len(crowd)  # some of them shared a statement
    for customer, answer in zip(crowd, answers):
        if customer is erased:
            assert answer.status_code == 401 and answer.json()["code"] == "account_erased"
        else:
            assert answer.status_code == 200 and answer.json() == alone[customer.id], customer.id
    assert alone[customers[0].id] != alone[customers[2].id]  # their points differ, and so do their reasons
