"""Errors of the points and mall room, each with its HTTP status and stable code."""

from __future__ import annotations

from kernel.errors import Conflict, Forbidden, NotFound, ValidationFailed


class InsufficientPoints(Conflict):
    code = "insufficient_points"
    default_message = "Not enough points."


class AlreadyCheckedIn(Conflict):
    code = "already_checked_in"
    default_message = "You have already checked in today."


class MakeupNotAllowed(Conflict):
    code = "makeup_not_allowed"
    default_message = "This day cannot be made up."


class MakeupLimitReached(Conflict):
    code = "makeup_limit_reached"
    default_message = "No make-up check-ins left this month."


class ConsumptionNotFound(NotFound):
    code = "consumption_not_found"
    default_message = "Consumption not found."


class RefundExceedsAmount(Conflict):
    code = "refund_exceeds_amount"
    default_message = "The refund is larger than what is left of the consumption."


class ExternalRefReused(Conflict):
    code = "external_ref_reused"
    default_message = "This external_ref was already recorded with different details."


class TierNotFound(NotFound):
    code = "tier_not_found"
    default_message = "Tier not found."


class TierConflict(Conflict):
    code = "tier_conflict"
    default_message = "Another tier already has this name or level."


class PointsCustomerNotFound(NotFound):
    code = "customer_not_found"
    default_message = "Customer not found."


class OriginalEntryNotFound(NotFound):
    code = "original_entry_not_found"
    default_message = "There is nothing recorded under that ref to reverse."


class VoucherNotFound(NotFound):
    code = "voucher_not_found"
    default_message = "Voucher not found."


class VoucherAlreadyRedeemed(Conflict):
    code = "voucher_already_redeemed"
    default_message = "This voucher was already redeemed."


class VoucherExpired(Conflict):
    code = "voucher_expired"
    default_message = "This voucher has expired."


class VoucherCancelled(Conflict):
    code = "voucher_cancelled"
    default_message = "This voucher was cancelled."


class VoucherWrongBranch(Conflict):
    code = "voucher_wrong_branch"
    default_message = "This voucher cannot be redeemed at this branch."


class VoucherNotCancellable(Conflict):
    code = "voucher_not_cancellable"
    default_message = "This voucher cannot be cancelled."


class ItemNotFound(NotFound):
    code = "item_not_found"
    default_message = "Mall item not found."


class OutOfStock(Conflict):
    code = "out_of_stock"
    default_message = "This item is out of stock."


class LimitReached(Conflict):
    code = "limit_reached"
    default_message = "You have reached the limit for this item."


class TierRequired(Conflict):
    code = "tier_required"
    default_message = "A higher membership tier is required for this item."


class NotAvailable(Conflict):
    code = "not_available"
    default_message = "This item is not available now."


class StockBelowReserved(ValidationFailed):
    code = "stock_below_reserved"
    default_message = "Stock cannot be set below what is already reserved by redemptions."


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"
    default_message = "This Idempotency-Key was used for a different request."


class RedemptionNotFound(NotFound):
    code = "redemption_not_found"
    default_message = "Redemption not found."


class ConsumptionApprovalNotFound(NotFound):
    code = "consumption_approval_not_found"
    default_message = "No such consumption awaiting approval."


class ConsumptionApprovalDecided(Conflict):
    code = "consumption_approval_decided"
    default_message = "This consumption was already approved or rejected."


class SameStaffApproval(Forbidden):
    code = "maker_checker"
    default_message = "A consumption above the approval threshold must be approved by a staff member other than the one who recorded it."
