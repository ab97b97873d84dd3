"""The reports room's part of a customer's data export and erasure (PIPL, see kernel/privacy.py).

The room keeps two per-customer summaries derived from the customer's consumptions: spend per clinic
month and branch, and the first two paid visit days. They are exported as they are. Erasure keeps them:
they are figures of the consumptions the points room keeps as financial records, the id no longer names
anyone once the kernel has erased the customer, and deleting them would make the reports disagree with
the records they summarise.
"""

from __future__ import annotations

from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from reports.models import CustomerMonth, CustomerVisits

TABLES = [
    (CustomerMonth, "customer_id", "monthly_spend"),
    (CustomerVisits, "customer_id", "first_paid_visits"),
]


async def export(conn: BaseDBAsyncClient, customer_id: int) -> dict[str, Any]:
    months = await CustomerMonth.filter(customer_id=customer_id).using_db(conn).order_by("month", "branch_id")
    visits = await CustomerVisits.get_or_none(customer_id=customer_id, using_db=conn)
    return {
        "monthly_spend": [
            {"month": m.month.isoformat()[:7], "branch_id": m.branch_id or None, "amount_fen": m.amount_fen,
             "refunded_fen": m.refunded_fen} for m in months
        ],
        "first_paid_visits": None if visits is None else {
            "first_day": visits.first_day.isoformat() if visits.first_day else None,
            "second_day": visits.second_day.isoformat() if visits.second_day else None,
        },
    }


async def erase(conn: BaseDBAsyncClient, customer_id: int) -> None:
    """Nothing to erase: see the module's docstring."""
    return None
