"""The points room's part of a customer's data export and erasure (PIPL, see kernel/privacy.py)."""

from __future__ import annotations

from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from points_mall.mall import cancel_vouchers_of_erased_customer
from points_mall.models import (
    CheckIn,
    Consumption,
    ConsumptionApproval,
    MallRedemption,
    PointsAccount,
    PointsLedgerEntry,
    Voucher,
)


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


async def export(conn: BaseDBAsyncClient, customer_id: int) -> dict[str, Any]:
    account = await PointsAccount.get_or_none(customer_id=customer_id, using_db=conn)
    ledger = await PointsLedgerEntry.filter(customer_id=customer_id).using_db(conn).order_by("id").values(
        "delta", "kind", "reason", "balance_after", "expires_at", "occurred_at"
    )
    check_ins = await CheckIn.filter(customer_id=customer_id).using_db(conn).order_by("local_date").values(
        "local_date", "streak", "points", "makeup"
    )
    consumptions = await Consumption.filter(customer_id=customer_id).using_db(conn).order_by("id").values(
        "amount_fen", "refunded_fen", "source", "points", "occurred_at"
    )
    # Large consumptions waiting for (or decided by) a second staff member: the customer's too.
    approvals = await ConsumptionApproval.filter(customer_id=customer_id).using_db(conn).order_by("id").values(
        "amount_fen", "status", "created_at", "decided_at"
    )
    redemptions = await MallRedemption.filter(customer_id=customer_id).using_db(conn).order_by("id").values(
        "item_title", "quantity", "points_spent", "status", "created_at"
    )
    vouchers = await Voucher.filter(customer_id=customer_id).using_db(conn).order_by("id").values(
        "title", "status", "valid_until", "issued_at", "redeemed_at"
    )
    return {
        "account": None
        if account is None
        else {"balance": account.balance, "pending": account.pending, "lifetime_earned": account.lifetime_earned},
        "ledger": [{k: _iso(v) for k, v in row.items()} for row in ledger],
        "check_ins": [{k: _iso(v) for k, v in row.items()} for row in check_ins],
        "consumptions": [{k: _iso(v) for k, v in row.items()} for row in consumptions],
        "consumption_approvals": [{k: _iso(v) for k, v in row.items()} for row in approvals],
        "redemptions": [{k: _iso(v) for k, v in row.items()} for row in redemptions],
        "vouchers": [{k: _iso(v) for k, v in row.items()} for row in vouchers],
    }


async def erase(conn: BaseDBAsyncClient, customer_id: int) -> None:
    """The rows stay (they hold amounts, dates and ids, not who the person is) so the ledger still sums to the
    balance and finance's totals add up; once the customer row is anonymised they belong to nobody identifiable.

    Unredeemed vouchers are cancelled: a code is a bearer credential, and nobody may redeem it for the person.
    """
    await cancel_vouchers_of_erased_customer(conn, customer_id)
