"""Errors of the orders room, each with its HTTP status and stable code."""

from __future__ import annotations

from kernel.errors import Conflict, NotFound, ValidationFailed


class OrderNotFound(NotFound):
    code = "order_not_found"
    default_message = "No such order."


class OrderNotPayable(Conflict):
    code = "order_not_payable"
    default_message = "This order can no longer be paid."


class PaymentWindowClosed(Conflict):
    code = "payment_window_closed"
    default_message = "The time to pay this order has run out."


class RefundNotAllowed(Conflict):
    code = "refund_not_allowed"
    default_message = "This order cannot be refunded (not paid, or nothing left to refund)."


class RefundTooLarge(ValidationFailed):
    code = "refund_too_large"
    default_message = "The refund is larger than what is left of the order."


class RefundKeyReused(Conflict):
    code = "idempotency_key_reused"
    default_message = "This Idempotency-Key was used for a different refund (another order, amount or reason)."


class PartialRefundOfPackageCards(ValidationFailed):
    code = "partial_refund_of_package_cards"
    default_message = ("This order holds package cards with unused sessions: refund them per card "
                       "(POST /admin/package-cards/{id}/refunds), or refund the whole order.")


class QuoteChanged(Conflict):
    code = "quote_changed"
    default_message = "The amount to pay changed since the quote (a balance, coupon or price moved); quote again."


class OrderKeyReused(Conflict):
    code = "idempotency_key_reused"
    default_message = "This Idempotency-Key was used for another purchase (other items, coupon or sources)."


class OrderAlreadyPaid(Conflict):
    code = "order_already_paid"
    default_message = "This order is paid: it can no longer be cancelled (ask for a refund instead)."


class OrderBeingPaid(Conflict):
    code = "order_being_paid"
    default_message = "This order is being paid right now; look at it again in a moment."
