"""Factories of the money-product tests: products, coupons, points and stored value for a customer, and the
ledger checks every test ends with."""

from __future__ import annotations

import secrets

from tortoise.functions import Sum

from kernel.db import transaction
from orders import catalogue, coupons, stored_value
from orders.product_models import (
    Coupon,
    CouponStatus,
    PackageSession,
    Product,
    StoredValueAccount,
    StoredValueEntry,
)
from points_mall import service as points
from points_mall.models import PointsAccount, PointsLedgerEntry


async def make_product(kind: str = "course", *, price_fen: int = 30000, sessions: int = 3, **fields) -> Product:
    items = {"course": [{"title": "Hydrafacial 水光", "sessions": sessions}],
             "service": [{"title": "Thermage 热玛吉", "sessions": 1}],
             "package": [{"title": "Laser 光子嫩肤", "sessions": 2}, {"title": "Peel 果酸", "sessions": 1}]}.get(kind, [])
    async with transaction() as conn:
        return await catalogue.create_product(
            conn, kind=kind, name=fields.pop("name", f"{kind} {secrets.token_hex(2)}"), price_fen=price_fen,
            items=items, **fields)


async def make_template(kind: str = "cash_off", **fields):
    defaults = {"cash_off": {"value_fen": 2000, "threshold_fen": 10000},
                "percent_off": {"discount_bp": 1000}, "free_service": {}}[kind]
    async with transaction() as conn:
        return await coupons.create_template(conn, kind=kind, **({"name": f"coupon {kind}"} | defaults | fields))


async def give_coupon(customer_id: int, template_id: int, ref: str | None = None) -> Coupon:
    async with transaction() as conn:
        coupon, _ = await coupons.issue_coupon(conn, customer_id, template_id, "staff", ref or secrets.token_hex(6))
        return coupon


async def give_points(customer_id: int, amount: int) -> None:
    async with transaction() as conn:
        await points.earn_points(conn, customer_id=customer_id, points=amount, kind="adjustment",
                                 ref=f"test:{secrets.token_hex(6)}", reason="test")


async def give_stored_value(customer_id: int, principal: int, bonus: int = 0) -> None:
    async with transaction() as conn:
        await stored_value._move(conn, customer_id, principal=principal, bonus=bonus, kind="topup",
                                 ref=f"test:{secrets.token_hex(6)}", order_id=None)


async def points_of(customer_id: int) -> int:
    """The customer's spendable points, read in a transaction of its own."""
    from points_mall.ledger import spendable

    async with transaction() as conn:
        return await spendable(conn, customer_id)


async def assert_ledgers_hold(customer_ids) -> None:
    """Every source's balance equals its ledger and none is negative; a session is redeemed or refunded once."""
    for cid in customer_ids:
        account = await StoredValueAccount.get_or_none(customer_id=cid)
        rows = await StoredValueEntry.filter(customer_id=cid).annotate(
            p=Sum("principal_delta"), b=Sum("bonus_delta")).values("p", "b")
        p, b = int(rows[0]["p"] or 0), int(rows[0]["b"] or 0)
        assert (account.principal_fen, account.bonus_fen) == (p, b) if account else (p, b) == (0, 0)
        assert p >= 0 and b >= 0
        pa = await PointsAccount.get_or_none(customer_id=cid)
        if pa is not None:
            ledger = await PointsLedgerEntry.filter(customer_id=cid).annotate(s=Sum("delta")).values("s")
            assert pa.balance == int(ledger[0]["s"] or 0) and pa.balance >= 0
        locked = await Coupon.filter(customer_id=cid, status__in=(CouponStatus.locked, CouponStatus.used)).values(
            "order_id")
        assert all(row["order_id"] is not None for row in locked)
    assert not await PackageSession.filter(redeemed_at__isnull=False, refunded_at__isnull=False).exists()


__all__ = ["assert_ledgers_hold", "give_coupon", "give_points", "give_stored_value", "make_product",
           "make_template", "points_of", "stored_value"]
