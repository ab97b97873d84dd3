"""Tortoise models of orders: the order and its lines, refunds, and the log of payment notifications."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class OrderStatus(StrEnum):
    pending_payment = "pending_payment"
    paid = "paid"
    fulfilled = "fulfilled"
    refunding = "refunding"
    refunded = "refunded"
    closed = "closed"


# Statuses in which the customer's money is with us (or on its way back).
MONEY_TAKEN = (OrderStatus.paid, OrderStatus.fulfilled, OrderStatus.refunding, OrderStatus.refunded)


class Order(Model):
    """A customer's order: what they buy (lines), what they owe in fen, and where the payment stands."""

    id = fields.BigIntField(primary_key=True)
    customer = fields.ForeignKeyField("kernel.Customer", related_name=False, on_delete=fields.RESTRICT)
    # Our order number at WeChat Pay (商户订单号): 6-32 characters of [0-9A-Za-z_-|*].
    out_trade_no = fields.CharField(max_length=32, unique=True)
    description = fields.CharField(max_length=127)
    total_fen = fields.IntField()
    status = fields.CharEnumField(OrderStatus, max_length=20, default=OrderStatus.pending_payment)
    # The gateway's transaction id (微信支付订单号); unique, so one payment can never be applied to two orders.
    transaction_id = fields.CharField(max_length=64, null=True, unique=True)
    prepay_id = fields.CharField(max_length=128, null=True)
    expires_at = fields.DatetimeField()
    paid_fen = fields.IntField(default=0)
    # Refunds requested (reserved) and confirmed by the gateway; reserved never exceeds total.
    refund_reserved_fen = fields.IntField(default=0)
    refunded_fen = fields.IntField(default=0)
    close_reason = fields.CharField(max_length=32, default="")
    created_at = fields.DatetimeField()
    paid_at = fields.DatetimeField(null=True)
    # Set once by the job that runs the paid-order side effects (fulfilment, consumption).
    paid_handled_at = fields.DatetimeField(null=True)
    fulfilled_at = fields.DatetimeField(null=True)
    closed_at = fields.DatetimeField(null=True)
    refunded_at = fields.DatetimeField(null=True)
    # Checkout (0.2): how the total was reached and which sources pay it. Orders from before carry the
    # defaults, which read as before: paid by WeChat Pay alone (wechat_fen null = total_fen).
    # total_fen = coupon_fen + points_cash_fen + stored_value_fen + wechat_fen.
    list_fen = fields.IntField(null=True)
    member_discount_fen = fields.IntField(default=0, db_default=0)
    coupon_id = fields.BigIntField(null=True)
    coupon_fen = fields.IntField(default=0, db_default=0)
    points_used = fields.IntField(default=0, db_default=0)
    points_cash_fen = fields.IntField(default=0, db_default=0)
    stored_value_fen = fields.IntField(default=0, db_default=0)
    wechat_fen = fields.IntField(null=True)
    # A catalogue purchase's Idempotency-Key and the digest of the body it came with: the same key
    # returns this order, the key with another body is refused. Null on orders placed without a key.
    idempotency_key = fields.CharField(max_length=64, null=True)
    request_digest = fields.CharField(max_length=64, null=True)

    class Meta:
        table = "shop_order"
        indexes = (("customer_id", "id"), ("status", "expires_at"), ("created_at",))
        # Several NULL keys never collide in a unique index, so keyless orders are unaffected.
        unique_together = (("customer_id", "idempotency_key"),)


class OrderLine(Model):
    """One thing bought: its kind says which room holds it (whose hooks release or fulfil it), ref_id which row."""

    id = fields.BigIntField(primary_key=True)
    order = fields.ForeignKeyField("orders.Order", related_name="lines", on_delete=fields.RESTRICT)
    kind = fields.CharField(max_length=32)
    ref_id = fields.BigIntField(null=True)
    title = fields.CharField(max_length=127)
    quantity = fields.IntField()
    unit_price_fen = fields.IntField()
    amount_fen = fields.IntField()
    # When the hold this line had (a seat, stock) was given back after the order closed unpaid.
    released_at = fields.DatetimeField(null=True)

    class Meta:
        table = "shop_order_line"
        indexes = (("kind", "ref_id"),)


class RefundStatus(StrEnum):
    pending = "pending"  # recorded, not yet accepted by the gateway
    processing = "processing"  # accepted, money on its way
    succeeded = "succeeded"
    closed = "closed"  # the gateway closed it; finance must look
    abnormal = "abnormal"  # e.g. the payer's card is frozen; finance must look
    failed = "failed"  # refused for good (e.g. invalid request)


class Refund(Model):
    """A refund of all or part of an order.

    Staff refunds carry the client's Idempotency-Key (unique: a retry finds the same refund, whatever its
    state); refunds the system decides (a failed group, a payment after close) are unique per order and reason.
    """

    id = fields.BigIntField(primary_key=True)
    order = fields.ForeignKeyField("orders.Order", related_name="refunds", on_delete=fields.RESTRICT)
    out_refund_no = fields.CharField(max_length=64, unique=True)
    reason = fields.CharField(max_length=32)
    amount_fen = fields.IntField()
    # Staff refunds: the client's key and what was asked (null amount: "everything left"), so a reuse of
    # the key for another request is refused rather than answered with this refund.
    idempotency_key = fields.CharField(max_length=64, null=True, unique=True)
    requested_fen = fields.IntField(null=True)
    status = fields.CharEnumField(RefundStatus, max_length=16, default=RefundStatus.pending)
    refund_id = fields.CharField(max_length=64, null=True)
    attempts = fields.IntField(default=0)
    last_error = fields.CharField(max_length=255, default="")
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()
    succeeded_at = fields.DatetimeField(null=True)
    # The part that goes back through WeChat Pay (null: all of it, as before 0.2); the rest goes back to
    # stored value and points (shop_refund_part), confirmed with the refund.
    wechat_fen = fields.IntField(null=True)

    class Meta:
        table = "shop_refund"
        indexes = (("status", "updated_at"),)


class NotificationOutcome(StrEnum):
    applied = "applied"
    duplicate = "duplicate"
    paid_after_close = "paid_after_close"
    not_success = "not_success"
    unknown_order = "unknown_order"
    amount_mismatch = "amount_mismatch"
    merchant_mismatch = "merchant_mismatch"


class PaymentEvent(Model):
    """Every authentic notification (and reconciliation answer) we acted on, with what we did: the audit trail."""

    id = fields.BigIntField(primary_key=True)
    source = fields.CharField(max_length=16)  # notify | refund_notify | query | sandbox
    notification_id = fields.CharField(max_length=64, default="")
    event_type = fields.CharField(max_length=48, default="")
    out_trade_no = fields.CharField(max_length=32, default="", db_index=True)
    out_refund_no = fields.CharField(max_length=64, default="")
    transaction_id = fields.CharField(max_length=64, default="")
    amount_fen = fields.IntField(null=True)
    outcome = fields.CharEnumField(NotificationOutcome, max_length=24)
    received_at = fields.DatetimeField()

    class Meta:
        table = "shop_payment_event"


def wechat_amount(order: Order) -> int:
    """What WeChat Pay collects for the order (the whole total for orders from before checkout existed)."""
    return order.total_fen if order.wechat_fen is None else order.wechat_fen


def refund_wechat_amount(refund: Refund) -> int:
    return refund.amount_fen if refund.wechat_fen is None else refund.wechat_fen


def refundable_fen(order: Order) -> int:
    """Money that can be refunded: everything but the coupon, which is not money (it comes back whole)."""
    return order.total_fen - order.coupon_fen

