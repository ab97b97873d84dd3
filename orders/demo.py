"""Demo money products for the embedded stack: one product of each kind (with a member price), three coupon
templates (满减, 折扣, free service; one claimable), stored value and a coupon for Alice, and a course card she
bought with her stored value (its card appears once the embedded worker runs the paid-order job)."""

from __future__ import annotations

from tortoise.backends.base.client import BaseDBAsyncClient

from kernel.demo import sandbox_openid
from kernel.identity.models import Customer
from orders import catalogue, checkout, coupons, stored_value
from orders.models import Order
from orders.product_models import CouponTemplate, Product, StoredValueEntry
from points_mall.models import MemberTier

PRODUCTS = [
    dict(kind="service", name="热玛吉 FLX 眼周 单次", category="anti_aging", price_fen=680_000,
         items=[{"title": "热玛吉 FLX 眼周", "sessions": 1}], validity_days=180),
    dict(kind="course", name="水光针 3 次卡", category="skin", price_fen=298_000,
         items=[{"title": "水光针", "sessions": 3}], validity_days=365),
    dict(kind="package", name="焕肤套餐 (光子嫩肤×2 + 果酸焕肤×2)", category="skin", price_fen=199_900,
         items=[{"title": "光子嫩肤", "sessions": 2}, {"title": "果酸焕肤", "sessions": 2}], validity_days=365),
    dict(kind="product", name="修护精华 30ml", category="skincare", price_fen=39_900),
    dict(kind="topup", name="储值 充5000得10000", category="stored_value", price_fen=500_000,
         topup_bonus_fen=500_000),
    dict(kind="topup", name="储值 充1000得1200", category="stored_value", price_fen=100_000, topup_bonus_fen=20_000),
]


async def load(conn: BaseDBAsyncClient) -> None:
    made: dict[str, Product] = {}
    tier = await MemberTier.filter(is_active=True).using_db(conn).order_by("level").first()
    for data in PRODUCTS:
        product = await Product.filter(name=data["name"]).using_db(conn).first()
        if product is None:
            member_prices = ([{"tier_id": tier.id, "price_fen": data["price_fen"] * 9 // 10}]
                             if tier is not None and data["kind"] != "topup" else [])
            product = await catalogue.create_product(conn, **data, member_prices=member_prices)
        made[data["name"]] = product
    templates = [
        dict(name="满 1000 减 100", kind="cash_off", value_fen=10_000, threshold_fen=100_000, claimable=True,
             per_customer_limit=3),
        dict(name="护肤 9 折", kind="percent_off", discount_bp=1000, categories=["skin", "skincare"]),
        dict(name="免费体验 修护精华", kind="free_service", free_product_id=made["修护精华 30ml"].id),
    ]
    by_name = {}
    for data in templates:
        template = await CouponTemplate.filter(name=data["name"]).using_db(conn).first()
        by_name[data["name"]] = template or await coupons.create_template(conn, **data)
    alice = await Customer.filter(openid=sandbox_openid("alice")).using_db(conn).first()
    if alice is None:
        return
    for name in by_name:
        await coupons.issue_coupon(conn, alice.id, by_name[name].id, "demo", f"demo:{name}")
    if not await StoredValueEntry.filter(ref="demo:alice").using_db(conn).exists():
        await stored_value._move(conn, alice.id, principal=500_000, bonus=500_000, kind="topup", ref="demo:alice",
                                 order_id=None)
    course = made["水光针 3 次卡"]
    if not await Order.filter(customer_id=alice.id, description=course.name).using_db(conn).exists():
        await checkout.place_order(conn, alice.id, [(course.id, 1)], coupon_id=None, points_limit=None,
                                   use_points=False, use_stored_value=True)
