"""The points room's part of a customer's data export and erasure (PIPL, see kernel/privacy.py)."""

from __future__ import annotations

from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from kernel.privacy import rows_of
from points_mall.mall import cancel_vouchers_of_erased_customer
from points_mall.models import (
    CheckIn,
    Consumption,
    ConsumptionApproval,
    ExpiryReminder,
    MallRedemption,
    PendingPoints,
    PointsAccount,
    PointsLedgerEntry,
    PointsLot,
    QualifiedReferral,
    TierChange,
    Voucher,
)

TABLES = [
    (PointsAccount, "customer_id", "account"),
    (PointsLedgerEntry, "customer_id", "ledger"),
    (CheckIn, "customer_id", "check_ins"),
    (Consumption, "customer_id", "consumptions"),
    (ConsumptionApproval, "customer_id", "consumption_approvals"),
    (MallRedemption, "customer_id", "redemptions"),
    (Voucher, "customer_id", "vouchers"),
    (PendingPoints, "customer_id", "pending_points"),
    (PointsLot, "customer_id", "lots"),
    (TierChange, "customer_id", "tier_changes"),
    (ExpiryReminder, "customer_id", "expiry_reminders"),
    (QualifiedReferral, "referrer_id", "qualified_referrals"),
]


async def export(conn: BaseDBAsyncClient, customer_id: int) -> dict[str, Any]:
    account = await PointsAccount.get_or_none(customer_id=customer_id, using_db=conn)
    return {
        "account": None
        if account is None
        else {"balance": account.balance, "pending": account.pending, "lifetime_earned": account.lifetime_earned},
        "ledger": await rows_of(
            PointsLedgerEntry.filter(customer_id=customer_id).using_db(conn),
            "delta", "kind", "reason", "balance_after", "expires_at", "occurred_at",
        ),
        "check_ins": await rows_of(
            CheckIn.filter(customer_id=customer_id).using_db(conn), "local_date", "streak", "points", "makeup"
        ),
        "consumptions": await rows_of(
            Consumption.filter(customer_id=customer_id).using_db(conn),
            "amount_fen", "refunded_fen", "source", "points", "occurred_at",
        ),
        # Large consumptions waiting for (or decided by) a second staff member: the customer's too.
        "consumption_approvals": await rows_of(
            ConsumptionApproval.filter(customer_id=customer_id).using_db(conn),
            "amount_fen", "status", "created_at", "decided_at",
        ),
        "redemptions": await rows_of(
            MallRedemption.filter(customer_id=customer_id).using_db(conn),
            "item_title", "quantity", "points_spent", "status", "created_at",
        ),
        "vouchers": await rows_of(
            Voucher.filter(customer_id=customer_id).using_db(conn),
            "title", "status", "valid_until", "issued_at", "redeemed_at",
        ),
        "pending_points": await rows_of(
            PendingPoints.filter(customer_id=customer_id).using_db(conn),
            "points", "kind", "reason", "earned_at", "release_at", "status", "settled_at",
        ),
        "lots": await rows_of(
            PointsLot.filter(customer_id=customer_id).using_db(conn), "points", "remaining", "earned_at", "expires_at"
        ),
        "tier_changes": await rows_of(
            TierChange.filter(customer_id=customer_id).using_db(conn),
            "from_tier_id", "to_tier_id", "direction", "reason", "occurred_at",
        ),
        "expiry_reminders": await rows_of(
            ExpiryReminder.filter(customer_id=customer_id).using_db(conn), "expires_at", "points", "created_at", "sent_at"
        ),
        "qualified_referrals": await rows_of(
            QualifiedReferral.filter(referrer_id=customer_id).using_db(conn), "occurred_at"
        ),
    }


async def erase(conn: BaseDBAsyncClient, customer_id: int) -> None:
    """The rows stay (they hold amounts, dates and ids, not who the person is) so the ledger still sums to the
    balance and finance's totals add up; once the customer row is anonymised they belong to nobody identifiable.

    Unredeemed vouchers are cancelled: a code is a bearer credential, and nobody may redeem it for the person.
    """
    await cancel_vouchers_of_erased_customer(conn, customer_id)
