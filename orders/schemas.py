"""Request and response structs of the order, payment and finance routes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

import msgspec

from orders.models import Order, OrderLine, OrderStatus, PaymentEvent, Refund, RefundStatus, wechat_amount
from kernel.schemas import Page


class Line(msgspec.Struct):
    kind: str
    title: str
    quantity: int
    unit_price_fen: int
    amount_fen: int

    @classmethod
    def of(cls, line: OrderLine) -> "Line":
        return cls(kind=line.kind, title=line.title, quantity=line.quantity, unit_price_fen=line.unit_price_fen,
                   amount_fen=line.amount_fen)


class OrderOut(msgspec.Struct):
    id: int
    out_trade_no: str
    description: str
    status: OrderStatus
    total_fen: int
    paid_fen: int
    refunded_fen: int
    created_at: datetime
    expires_at: datetime
    paid_at: datetime | None
    lines: list[Line]
    # How the total is paid (0.2): total_fen = coupon_fen + points_cash_fen + stored_value_fen + wechat_fen.
    list_fen: int
    member_discount_fen: int
    coupon_fen: int
    points_used: int
    points_cash_fen: int
    stored_value_fen: int
    wechat_fen: int
    # Why a closed order closed: "expired" (the payment window ran out), "cancelled" (the customer), ...
    closed_at: datetime | None = None
    close_reason: str = ""

    @classmethod
    def of(cls, order: Order, lines: list[OrderLine]) -> "OrderOut":
        return cls(
            id=order.id, out_trade_no=order.out_trade_no, description=order.description, status=order.status,
            total_fen=order.total_fen, paid_fen=order.paid_fen, refunded_fen=order.refunded_fen,
            created_at=order.created_at, expires_at=order.expires_at, paid_at=order.paid_at,
            lines=[Line.of(line) for line in lines],
            list_fen=order.total_fen if order.list_fen is None else order.list_fen,
            member_discount_fen=order.member_discount_fen, coupon_fen=order.coupon_fen,
            points_used=order.points_used, points_cash_fen=order.points_cash_fen,
            stored_value_fen=order.stored_value_fen, wechat_fen=wechat_amount(order),
            closed_at=order.closed_at, close_reason=order.close_reason,
        )


class OrderPage(Page):
    items: list[OrderOut]


class RefundOut(msgspec.Struct):
    id: int
    out_refund_no: str
    reason: str
    amount_fen: int
    status: RefundStatus
    attempts: int
    last_error: str
    created_at: datetime
    succeeded_at: datetime | None

    @classmethod
    def of(cls, r: Refund) -> "RefundOut":
        return cls(id=r.id, out_refund_no=r.out_refund_no, reason=r.reason, amount_fen=r.amount_fen, status=r.status,
                   attempts=r.attempts, last_error=r.last_error, created_at=r.created_at, succeeded_at=r.succeeded_at)


class PaymentEventOut(msgspec.Struct):
    source: str
    event_type: str
    outcome: str
    transaction_id: str
    out_refund_no: str
    amount_fen: int | None
    received_at: datetime

    @classmethod
    def of(cls, e: PaymentEvent) -> "PaymentEventOut":
        return cls(source=e.source, event_type=e.event_type, outcome=e.outcome.value, transaction_id=e.transaction_id,
                   out_refund_no=e.out_refund_no, amount_fen=e.amount_fen, received_at=e.received_at)


class FinanceOrder(msgspec.Struct):
    id: int
    out_trade_no: str
    transaction_id: str | None
    customer_id: int
    description: str
    status: OrderStatus
    total_fen: int
    paid_fen: int
    refunded_fen: int
    net_fen: int
    created_at: datetime
    paid_at: datetime | None


class FinanceTotals(msgspec.Struct):
    orders: int
    total_fen: int
    paid_fen: int
    refunded_fen: int
    net_fen: int


class FinanceOrderPage(Page):
    totals: FinanceTotals
    items: list[FinanceOrder]


class FinanceOrderDetail(msgspec.Struct):
    order: FinanceOrder
    lines: list[Line]
    refunds: list[RefundOut]
    events: list[PaymentEventOut]


class StaffRefundReason(StrEnum):
    customer_request = "customer_request"
    service_issue = "service_issue"
    goodwill = "goodwill"


class StaffRefundCreate(msgspec.Struct, forbid_unknown_fields=True):
    reason: StaffRefundReason
    # Omitted: everything not yet refunded.
    amount_fen: Annotated[int, msgspec.Meta(ge=1)] | None = None
    note: Annotated[str, msgspec.Meta(max_length=200)] = ""


class SandboxPaymentResult(msgspec.Struct):
    outcome: str
    order_id: int
    status: OrderStatus
