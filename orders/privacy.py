"""The orders room's part of a customer's data export and erasure (PIPL, see kernel/privacy.py)."""

from __future__ import annotations

from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from kernel.privacy import plain, rows_of
from orders.models import Order, OrderLine, PaymentEvent, Refund
from orders.product_models import (
    Coupon,
    CouponStatus,
    PackageCard,
    PackageSession,
    StoredValueAccount,
    StoredValueEntry,
)

TABLES = [
    (Order, "customer_id", "orders"),
    (Coupon, "customer_id", "coupons"),
    (StoredValueAccount, "customer_id", "stored_value"),
    (StoredValueEntry, "customer_id", "stored_value_entries"),
    (PackageCard, "customer_id", "package_cards"),
]


async def export(conn: BaseDBAsyncClient, customer_id: int) -> dict[str, Any]:
    """Every order with its lines, refunds and the payment notifications we acted on."""
    orders = []
    for order in await Order.filter(customer_id=customer_id).using_db(conn).order_by("id"):
        orders.append({
            "out_trade_no": order.out_trade_no, "description": order.description, "total_fen": order.total_fen,
            "paid_fen": order.paid_fen, "refunded_fen": order.refunded_fen, "status": order.status.value,
            "transaction_id": order.transaction_id, "created_at": plain(order.created_at),
            "paid_at": plain(order.paid_at), "fulfilled_at": plain(order.fulfilled_at),
            "closed_at": plain(order.closed_at), "refunded_at": plain(order.refunded_at),
            "lines": await rows_of(OrderLine.filter(order_id=order.id).using_db(conn),
                                   "kind", "title", "quantity", "unit_price_fen", "amount_fen", "released_at"),
            "refunds": await rows_of(Refund.filter(order_id=order.id).using_db(conn),
                                     "out_refund_no", "reason", "amount_fen", "status", "created_at", "succeeded_at"),
            "payments": await rows_of(PaymentEvent.filter(out_trade_no=order.out_trade_no).using_db(conn),
                                      "source", "event_type", "transaction_id", "amount_fen", "outcome", "received_at"),
        })
    account = await StoredValueAccount.get_or_none(customer_id=customer_id).using_db(conn)
    cards = []
    for card in await PackageCard.filter(customer_id=customer_id).using_db(conn).order_by("id"):
        cards.append({"title": card.title, "paid_fen": card.paid_fen, "status": card.status.value,
                      "expires_at": plain(card.expires_at), "created_at": plain(card.created_at),
                      "sessions": await rows_of(PackageSession.filter(card_id=card.id).using_db(conn),
                                                "seq", "title", "value_fen", "redeemed_at", "refunded_at")})
    return {
        "orders": orders,
        "coupons": await rows_of(Coupon.filter(customer_id=customer_id).using_db(conn),
                                 "template_id", "source", "status", "valid_from", "valid_until", "order_id"),
        "stored_value": None if account is None else {"principal_fen": account.principal_fen,
                                                      "bonus_fen": account.bonus_fen},
        "stored_value_entries": await rows_of(StoredValueEntry.filter(customer_id=customer_id).using_db(conn),
                                              "kind", "principal_delta", "bonus_delta", "order_id", "created_at"),
        "package_cards": cards,
    }


async def erase(conn: BaseDBAsyncClient, customer_id: int) -> None:
    """Nothing to remove: orders hold amounts, dates and ids that finance's totals depend on.

    The WeChat openid of the payer is never stored here; once the customer row is anonymised the
    orders belong to nobody identifiable. Coupons not yet used are voided (nobody may use them for the person);
    stored value and paid cards stay, as money the clinic owes (finance settles them with the person).
    """
    await Coupon.filter(customer_id=customer_id, status=CouponStatus.available).using_db(conn).update(
        status=CouponStatus.void)
