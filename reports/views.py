"""The report catalogue and running a report for a staff member: the range checked, the front desk held to its
branch, money columns (unit `fen`) shown to finance and admin only.

The report queries themselves read summary tables only (never another room's rows) and answer in one shape
(reports/figures.py): `customer_figures.py` (customers and revenue) and `operations_figures.py` (operations).
"""

from __future__ import annotations

from tortoise.backends.base.client import BaseDBAsyncClient

from kernel import clock
from kernel.identity.tokens import Principal
from reports.customer_figures import new_customers, referral_roi, repurchase, rfm_classes, rfm_movements, top_customers
from reports.errors import BranchForbidden, BranchNotApplicable, InvalidRange, StaffBranchNotAssigned
from reports.figures import Query, Spec
from reports.operations_figures import consultations, group_buys, mall, points, surveys
from reports.schemas import Report
from reports.sql import fetch

MONEY_ROLES = frozenset({"admin", "finance"})
WIDE_ROLES = frozenset({"admin", "finance", "campaign"})  # not limited to one branch
MAX_SPAN_DAYS = 3 * 366


# --- the catalogue ---------------------------------------------------------------------------------

REPORTS: dict[str, Spec] = {s.slug: s for s in [
    Spec("new-customers", "New customers by source, referral share", ("campaign",), False, new_customers),
    Spec("repurchase", "Repurchase rate by month and branch", ("campaign", "finance"), True, repurchase),
    Spec("rfm-classes", "RFM class sizes and moves", ("campaign",), False, rfm_classes),
    Spec("rfm-movements", "RFM moves between classes", ("campaign",), False, rfm_movements),
    Spec("group-buys", "Group-buy funnel per campaign", ("campaign", "finance"), True, group_buys),
    Spec("mall", "Mall redemptions and vouchers used", ("campaign", "finance"), True, mall),
    Spec("consultations", "Consultations to paid treatments, no-shows", ("campaign", "finance", "front_desk"), True,
         consultations),
    Spec("surveys", "Survey scores by branch, department, doctor", ("campaign", "front_desk"), True, surveys),
    Spec("points", "Points liability and expiry", ("finance",), False, points),
    Spec("referral-roi", "Referral rewards against referred revenue", ("finance",), True, referral_roi),
    Spec("top-customers", "Top 20% customers' share of revenue", ("finance",), True, top_customers),
]}


def visible_to(spec: Spec, roles: frozenset[str]) -> bool:
    return bool(roles & (set(spec.roles) | {"admin"}))


async def staff_branch(conn: BaseDBAsyncClient, staff_id: int) -> int | None:
    rows = await fetch(conn, "SELECT branch_id FROM report_staff_branch WHERE staff_id = %s", [staff_id])
    return int(rows[0]["branch_id"]) if rows else None


async def run(conn: BaseDBAsyncClient, spec: Spec, staff: Principal, q: Query) -> Report:
    """A report for a staff member: the range checked, front desk held to its branch, money shown to finance."""
    if q.date_from > q.date_to or (q.date_to - q.date_from).days > MAX_SPAN_DAYS:
        raise InvalidRange(field="from")
    if not spec.takes_branch and q.branch_id is not None:
        raise BranchNotApplicable(field="branch_id")
    if spec.takes_branch and not staff.roles & WIDE_ROLES:
        own = await staff_branch(conn, staff.id)
        if own is None:
            raise StaffBranchNotAssigned()
        if q.branch_id is not None and q.branch_id != own:
            raise BranchForbidden(branch_id=q.branch_id)
        q.branch_id = own
    figures = await spec.build(conn, q)
    columns, rows = figures.columns, figures.rows
    if not staff.roles & MONEY_ROLES:
        keep = [i for i, col in enumerate(columns) if col.unit != "fen"]
        columns = [columns[i] for i in keep]
        rows = [[row[i] for i in keep] for row in rows]
    return Report(report=spec.slug, title=spec.title, timezone=str(clock.clinic_zone()), date_from=q.date_from,
                  date_to=q.date_to, branch_id=q.branch_id, columns=columns, rows=rows, notes=figures.notes)
