"""Demo data of points and the mall: the check-in table, tiers, a few customers with history, mall items."""

from __future__ import annotations

from datetime import timedelta

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import Q

from kernel import clock
from kernel.demo import sandbox_openid
from kernel.identity.models import Customer
from points_mall import checkin, ledger
from points_mall.consumption import record_consumption
from points_mall.errors import AlreadyCheckedIn
from points_mall.models import Consumption, MallItem, MallItemKind, MemberTier, PointsLedgerEntry
from points_mall.rules import get_rules, update_rules
from points_mall.tiers import create_tier

TIERS = [
    dict(name="普通会员 Member", level=0, multiplier_pct=100, benefits="Points on every visit; birthday gift."),
    dict(name="银卡 Silver", level=1, min_spend_fen=500_000, min_referrals=2, multiplier_pct=110,
         benefits="1.1x points; priority booking."),
    dict(name="金卡 Gold", level=2, min_spend_fen=2_000_000, min_referrals=5, multiplier_pct=120,
         benefits="1.2x points; a free skin analysis each quarter."),
    dict(name="钻石 Diamond", level=3, min_spend_fen=5_000_000, multiplier_pct=150,
         benefits="1.5x points; a personal consultant."),
]

ITEMS = [
    dict(kind=MallItemKind.service_voucher, title="Hydrating facial 补水护理", points_price=1200, stock_total=50,
         limit_per_customer=2, limit_per_month=1, voucher_valid_days=60, sort_order=1,
         description="A 60-minute hydrating facial at any branch."),
    dict(kind=MallItemKind.service_voucher, title="Skin analysis 皮肤检测", points_price=300, stock_total=200,
         limit_per_month=1, voucher_valid_days=30, sort_order=2, description="VISIA skin analysis with a consultant."),
    dict(kind=MallItemKind.service_voucher, title="Photon rejuvenation 光子嫩肤", points_price=6000, stock_total=10,
         limit_per_customer=1, min_tier_level=2, voucher_valid_days=90, sort_order=3,
         description="Gold members and above."),
    dict(kind=MallItemKind.gift, title="Lipstick 口红", points_price=800, stock_total=3, limit_per_customer=1,
         voucher_valid_days=30, sort_order=4, description="Nearly gone: collect at the front desk."),
    dict(kind=MallItemKind.gift, title="Blind box 盲盒", points_price=500, stock_total=100, limit_per_month=2,
         voucher_valid_days=30, sort_order=5, description="A surprise skincare sample set."),
    dict(kind=MallItemKind.coupon, title="¥100 off any treatment 百元抵扣券", points_price=1000, stock_total=500,
         limit_per_month=1, voucher_valid_days=30, sort_order=6, description="Shown at payment."),
    dict(kind=MallItemKind.coupon, title="¥30 off a skin-care product", points_price=250, stock_total=1000,
         voucher_valid_days=30, sort_order=7, description="Shown at payment."),
]


async def _customer(conn: BaseDBAsyncClient, name: str) -> Customer | None:
    return await Customer.get_or_none(openid=sandbox_openid(name), using_db=conn)


async def load(conn: BaseDBAsyncClient) -> None:
    if not (await get_rules(conn)).expiry_reminder_template_id:
        # The sandbox accepts any template id; a clinic sets the one it registered with WeChat.
        await update_rules(conn, None, {"expiry_reminder_template_id": "demo-points-expiry"})
    # Each piece is created only if missing (by name / title), so loading twice changes nothing.
    for tier in TIERS:
        taken = MemberTier.filter(Q(name=tier["name"]) | Q(level=tier["level"]))
        if not await taken.using_db(conn).exists():
            await create_tier(conn, **tier)
    now = clock.now()
    for item in ITEMS:
        if not await MallItem.filter(title=item["title"]).using_db(conn).exists():
            await MallItem.create(**item, on_shelf=True, created_at=now, updated_at=now, using_db=conn)

    alice = await _customer(conn, "alice")
    if alice is not None and not await PointsLedgerEntry.filter(customer_id=alice.id).using_db(conn).exists():
        # Four days in a row up to yesterday: she checks in today for day five.
        today = clock.local_today()
        for back in range(4, 0, -1):
            try:
                await checkin.check_in(conn, alice.id, day=today - timedelta(days=back))
            except AlreadyCheckedIn:
                pass
        await ledger.earn_points(conn, customer_id=alice.id, points=1500, kind="campaign", ref="demo:alice:welcome",
                                 reason="Spring campaign welcome gift")

    bella = await _customer(conn, "bella")
    if bella is not None and not await Consumption.filter(customer_id=bella.id).using_db(conn).exists():
        # A treatment two months ago (its points have been released) and one last week (still pending).
        with clock.frozen_at(now - timedelta(days=60)):
            await record_consumption(conn, customer_id=bella.id, amount_fen=588_000, source="front_desk",
                                     external_ref="demo:bella:thermage", branch_id=1)
        with clock.frozen_at(now - timedelta(days=50)):
            for pending_id in await ledger.due_pending_ids(conn):
                await ledger.release_pending(conn, pending_id)
        with clock.frozen_at(now - timedelta(days=2)):
            await record_consumption(conn, customer_id=bella.id, amount_fen=128_000, source="front_desk",
                                     external_ref="demo:bella:facial", branch_id=1)
