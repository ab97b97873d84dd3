"""The demo data loads on MariaDB, twice without changing anything the second time."""

from __future__ import annotations

from kernel import demo as kernel_demo
from kernel.db import transaction
from kernel.demo import sandbox_openid
from kernel.identity.models import Customer
from points_mall import demo
from points_mall.models import CheckIn, MallItem, MemberTier, PendingPoints, PointsLedgerEntry
from tests.points_mall.factories import assert_ledger_consistent


async def test_demo_loads_idempotently():
    for _ in range(2):
        async with transaction() as conn:
            await kernel_demo.load(conn)
        async with transaction() as conn:
            await demo.load(conn)
    alice = await Customer.get(openid=sandbox_openid("alice"))
    bella = await Customer.get(openid=sandbox_openid("bella"))
    assert await CheckIn.filter(customer_id=alice.id).count() == 4
    assert await assert_ledger_consistent(alice.id) > 1500
    assert await assert_ledger_consistent(bella.id) == 5880
    assert await PendingPoints.filter(customer_id=bella.id, status="pending").count() == 1
    assert await PointsLedgerEntry.filter(customer_id=bella.id).count() == 1
    titles = {item.title: item for item in await MallItem.filter(title__in=[i["title"] for i in demo.ITEMS])}
    assert len(titles) == len(demo.ITEMS)
    assert {i.kind for i in titles.values()} == {"service_voucher", "gift", "coupon"}
    assert min(i.stock_total for i in titles.values()) <= 3  # one nearly out of stock
    assert await MemberTier.filter(name__in=[t["name"] for t in demo.TIERS]).count() == len(demo.TIERS)
