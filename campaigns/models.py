"""Tortoise models of the campaigns app: orders and payments (campaigns/orders), group buys (campaigns/groupbuy)."""

from campaigns.orders.models import (  # noqa: F401  (re-exported for Tortoise's model discovery)
    NotificationOutcome,
    Order,
    OrderLine,
    OrderStatus,
    PaymentEvent,
    Refund,
    RefundStatus,
)
