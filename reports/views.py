"""The report queries: each reads summary tables only (never another room's rows) and answers in one shape.

A report is columns and rows; the chart, the CSV and the XLSX are all drawn from the same rows, so they
cannot disagree. Money columns (unit `fen`) are shown to finance and admin only.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from crm.models import RFM_LABELS, RfmClass, SourceKind
from kernel import clock
from kernel.identity.tokens import Principal
from reports import partners
from reports.errors import BranchForbidden, BranchNotApplicable, InvalidRange, StaffBranchNotAssigned
from reports.schemas import Column, Report
from reports.settings import get_report_settings
from reports.sql import day as as_day, fetch, month_sql

MONEY_ROLES = frozenset({"admin", "finance"})
WIDE_ROLES = frozenset({"admin", "finance", "campaign"})  # not limited to one branch
MAX_SPAN_DAYS = 3 * 366


@dataclass
class Query:
    date_from: date
    date_to: date
    branch_id: int | None = None
    within_days: int | None = None

    def days(self, day: str = "day", branch: str = "branch_id", extra: str = "") -> tuple[str, list[Any]]:
        """The WHERE clause (and its arguments) of a summary table's rows in the range, at the branch if one is
        asked for; `extra` is a fixed condition of the report's own."""
        where, args = f"{day} >= %s AND {day} <= %s{extra}", [self.date_from, self.date_to]
        if self.branch_id is not None:
            where += f" AND {branch} = %s"
            args.append(self.branch_id)
        return where, args


@dataclass
class Figures:
    columns: list[Column]
    rows: list[list[Any]]
    notes: list[str] = field(default_factory=list)


Builder = Callable[[BaseDBAsyncClient, Query], Awaitable[Figures]]


@dataclass(frozen=True)
class Spec:
    slug: str
    title: str
    roles: tuple[str, ...]  # admin is always admitted too
    takes_branch: bool
    build: Builder


def c(key: str, label: str, unit: str) -> Column:
    return Column(key=key, label=label, unit=unit)  # type: ignore[arg-type]


def bp(part: int, whole: int) -> int | None:
    """A share in basis points, rounded half up; None when there is nothing to share."""
    return (part * 10000 * 2 + whole) // (2 * whole) if whole else None


def months_of(first: date, last: date) -> list[date]:
    out, m = [], first.replace(day=1)
    while m <= last:
        out.append(m)
        m = (m + timedelta(days=32)).replace(day=1)
    return out


def month_label(d: date) -> str:
    return d.strftime("%Y-%m")


# --- new customers by acquisition source --------------------------------------------------------

SOURCES = [k.value for k in SourceKind]


async def new_customers(conn: BaseDBAsyncClient, q: Query) -> Figures:
    rows = await fetch(conn, "SELECT day, source_kind, customers FROM report_acquisition_day "
                             "WHERE day >= %s AND day <= %s", [q.date_from, q.date_to])
    per: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        per[as_day(r["day"]).replace(day=1)][r["source_kind"]] += int(r["customers"])
    out = []
    for m in months_of(q.date_from, q.date_to):
        counts = per.get(m, {})
        total = sum(counts.values())
        out.append([month_label(m), *[counts.get(s, 0) for s in SOURCES], total,
                    bp(counts.get("customer_referral", 0), total)])
    return Figures(
        [c("month", "Month", "month"), *[c(s, s.replace("_", " "), "count") for s in SOURCES],
         c("total", "New customers", "count"), c("referral_share_bp", "Referral share", "bp")],
        out, ["New customers are counted on the clinic day of their first login, by where they came from."],
    )


# --- repurchase ---------------------------------------------------------------------------------

async def repurchase(conn: BaseDBAsyncClient, q: Query) -> Figures:
    within = q.within_days or get_report_settings().repurchase_days
    month = month_sql(conn, "first_day")
    where, args = q.days("first_day", "first_branch_id")
    args = [within, *args]  # the gap's bound comes first in the statement
    rows = await fetch(
        conn,
        f"SELECT {month} AS m, first_branch_id AS b, COUNT(*) AS n, "
        "SUM(CASE WHEN gap_days IS NOT NULL AND gap_days <= %s THEN 1 ELSE 0 END) AS again "
        f"FROM report_customer_visits WHERE {where} GROUP BY {month}, first_branch_id",
        args,
    )
    names = (await partners.names(conn))["branch"]
    out = sorted(
        ([month_label(as_day(r["m"])), int(r["b"]), names.get(int(r["b"]), ""), int(r["n"]), int(r["again"] or 0),
          bp(int(r["again"] or 0), int(r["n"]))] for r in rows),
        key=lambda row: (row[0], row[1]),
    )
    open_since = clock.local_today() - timedelta(days=within)
    notes = [f"A customer repurchased when their second paid visit (a clinic day with a consumption not refunded "
             f"in full) came within {within} days of the first; customers are counted in the month and at the "
             f"branch of their first paid visit."]
    if q.date_to > open_since:
        notes.append(f"Customers first seen after {open_since.isoformat()} still have time to come back.")
    return Figures(
        [c("month", "Month of first visit", "month"), c("branch_id", "Branch id", "count"),
         c("branch", "Branch", "text"), c("first_visits", "New paying customers", "count"),
         c("repurchased", f"Back within {within} days", "count"), c("repurchase_rate_bp", "Repurchase rate", "bp")],
        out, notes,
    )


# --- RFM ------------------------------------------------------------------------------------------

async def _scoring_day_at(conn: BaseDBAsyncClient, d: date) -> date | None:
    rows = await fetch(conn, "SELECT MAX(as_of) AS d FROM report_rfm_class_day WHERE as_of <= %s", [d])
    return as_day(rows[0]["d"])


async def _sizes(conn: BaseDBAsyncClient, d: date | None) -> dict[str, int]:
    if d is None:
        return {}
    rows = await fetch(conn, "SELECT rfm_class, customers FROM report_rfm_class_day WHERE as_of = %s", [d])
    return {r["rfm_class"]: int(r["customers"]) for r in rows}


async def _movements(conn: BaseDBAsyncClient, start: date | None, end: date | None) -> list[dict[str, Any]]:
    if end is None:
        return []
    return await fetch(
        conn,
        "SELECT from_class, to_class, SUM(customers) AS n FROM report_rfm_movement_day "
        "WHERE as_of > %s AND as_of <= %s GROUP BY from_class, to_class",
        [start or date(1970, 1, 1), end],
    )


async def rfm_classes(conn: BaseDBAsyncClient, q: Query) -> Figures:
    start, end = await _scoring_day_at(conn, q.date_from), await _scoring_day_at(conn, q.date_to)
    before, after = await _sizes(conn, start), await _sizes(conn, end)
    moved_in: dict[str, int] = defaultdict(int)
    moved_out: dict[str, int] = defaultdict(int)
    for r in await _movements(conn, start, end):
        if r["from_class"]:
            moved_out[r["from_class"]] += int(r["n"])
        moved_in[r["to_class"]] += int(r["n"])
    out = [[k.value, RFM_LABELS[k], before.get(k.value, 0), after.get(k.value, 0),
            after.get(k.value, 0) - before.get(k.value, 0), moved_in.get(k.value, 0), moved_out.get(k.value, 0)]
           for k in RfmClass]
    return Figures(
        [c("rfm_class", "Class", "text"), c("label", "类别", "text"), c("at_start", "Customers at start", "count"),
         c("at_end", "Customers at end", "count"), c("change", "Change", "count"),
         c("moved_in", "Moved in", "count"), c("moved_out", "Moved out", "count")],
        out,
        [f"Sizes on the scoring days {start or 'none'} (at or before 'from') and {end or 'none'} (at or before "
         f"'to'); moves are the class changes recorded on the scoring days in between (a customer who moved "
         "twice counts twice; a first score counts as moved in)."],
    )


async def rfm_movements(conn: BaseDBAsyncClient, q: Query) -> Figures:
    start, end = await _scoring_day_at(conn, q.date_from), await _scoring_day_at(conn, q.date_to)
    rows = await _movements(conn, start, end)
    out = sorted([[r["from_class"] or "", r["to_class"], int(r["n"])] for r in rows], key=lambda x: (x[0], x[1]))
    return Figures(
        [c("from_class", "From", "text"), c("to_class", "To", "text"), c("customers", "Customers", "count")],
        out, [f"Class changes recorded on the scoring days after {start or 'the first'} up to {end or 'none'}; "
              "an empty 'from' is a first score."],
    )


# --- group-buy funnel -----------------------------------------------------------------------------

FUNNEL = ["views", "opened", "joined", "paid", "succeeded", "virtually_completed", "failed", "refunded"]


async def group_buys(conn: BaseDBAsyncClient, q: Query) -> Figures:
    rows = await fetch(
        conn,
        f"SELECT campaign_id, title, kind, branch_ids, {', '.join(FUNNEL)}, paid_fen, refunded_fen "
        "FROM report_campaign_funnel WHERE first_day <= %s AND last_day >= %s ORDER BY campaign_id",
        [q.date_to, q.date_from],
    )
    out = []
    for r in rows:
        branches = r["branch_ids"]
        if isinstance(branches, str):
            branches = json.loads(branches)
        if q.branch_id is not None and branches and q.branch_id not in branches:
            continue
        out.append([int(r["campaign_id"]), r["title"], r["kind"], *[int(r[k]) for k in FUNNEL],
                    int(r["paid_fen"]), int(r["refunded_fen"]), int(r["paid_fen"]) - int(r["refunded_fen"])])
    return Figures(
        [c("campaign_id", "Campaign id", "count"), c("title", "Campaign", "text"), c("kind", "Kind", "text"),
         c("views", "Share views", "count"), c("opened", "Groups opened", "count"),
         c("joined", "Joined", "count"), c("paid", "Paid", "count"), c("succeeded", "Groups succeeded", "count"),
         c("virtually_completed", "Completed virtually", "count"), c("failed", "Groups failed", "count"),
         c("refunded", "Refunded entries", "count"), c("paid_fen", "Paid", "fen"),
         c("refunded_fen", "Refunded", "fen"), c("net_fen", "Net", "fen")],
        out,
        ["Campaigns running at any time in the range (and offered at the branch, when one is given). Views are "
         "the share views of bestie-card groups; joined counts friends joining a group and buyers of a category "
         "sale; paid counts entries ever paid, refunded those refunded since."],
    )


# --- mall redemptions and vouchers used --------------------------------------------------------

async def mall(conn: BaseDBAsyncClient, q: Query) -> Figures:
    red = await fetch(conn, "SELECT day, redemptions, units, cancelled_units, points_spent FROM report_mall_day "
                            "WHERE day >= %s AND day <= %s", [q.date_from, q.date_to])
    where, args = q.days()
    used = await fetch(conn, f"SELECT day, source_type, redeemed FROM report_voucher_day WHERE {where}", args)
    per: dict[date, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for r in red:
        cell = per[as_day(r["day"]).replace(day=1)]
        for i, k in enumerate(("redemptions", "units", "cancelled_units", "points_spent")):
            cell[i] += int(r[k])
    sources = sorted({r["source_type"] for r in used})
    vouchers: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in used:
        vouchers[as_day(r["day"]).replace(day=1)][r["source_type"]] += int(r["redeemed"])
    out = []
    for m in months_of(q.date_from, q.date_to):
        v = vouchers.get(m, {})
        out.append([month_label(m), *per[m], sum(v.values()), *[v.get(s, 0) for s in sources]])
    notes = ["Redemptions on the clinic day they were made; units given back by cancelled vouchers are counted "
             "against the day of the redemption. Vouchers used are 核销 on the day and at the branch they were used."]
    if q.branch_id is not None:
        notes.append("The branch limits the vouchers used; mall redemptions are organisation-wide.")
    return Figures(
        [c("month", "Month", "month"), c("redemptions", "Redemptions", "count"), c("units", "Units", "count"),
         c("cancelled_units", "Units given back", "count"), c("points_spent", "Points spent", "points"),
         c("vouchers_used", "Vouchers used", "count"), *[c(f"used_{s}", f"Used: {s}", "count") for s in sources]],
        out, notes,
    )


# --- consultations, conversions and no-shows ------------------------------------------------------

async def consultations(conn: BaseDBAsyncClient, q: Query) -> Figures:
    where, args = q.days()
    rows = await fetch(
        conn,
        "SELECT branch_id, department_id, practitioner_id, SUM(bookings) AS bookings, SUM(no_shows) AS no_shows, "
        "SUM(consultations) AS consultations, SUM(converted) AS converted, SUM(converted_fen) AS converted_fen "
        f"FROM report_visit_day WHERE {where} GROUP BY branch_id, department_id, practitioner_id",
        args,
    )
    names = await partners.names(conn)
    out = []
    for r in sorted(rows, key=lambda r: (int(r["branch_id"]), int(r["department_id"]), int(r["practitioner_id"]))):
        b, d, p = int(r["branch_id"]), int(r["department_id"]), int(r["practitioner_id"])
        n, ns, cons, conv = (int(r[k] or 0) for k in ("bookings", "no_shows", "consultations", "converted"))
        out.append([b, names["branch"].get(b, ""), d, names["department"].get(d, ""), p,
                    names["practitioner"].get(p, "") if p else "", n, ns, bp(ns, n), cons, conv, bp(conv, cons),
                    int(r["converted_fen"] or 0)])
    days = get_report_settings().conversion_days
    return Figures(
        [c("branch_id", "Branch id", "count"), c("branch", "Branch", "text"), c("department_id", "Department id", "count"),
         c("department", "Department", "text"), c("practitioner_id", "Doctor id", "count"),
         c("practitioner", "Doctor", "text"), c("bookings", "Bookings", "count"), c("no_shows", "No-shows", "count"),
         c("no_show_rate_bp", "No-show rate", "bp"), c("consultations", "Consultations", "count"),
         c("converted", "Converted", "count"), c("conversion_rate_bp", "Conversion rate", "bp"),
         c("converted_fen", "Paid after consultation", "fen")],
        out,
        [f"Bookings on their local day, not cancelled. A consultation (completed, with a pre-triage form, without "
         f"a service, or for a service that needs one) converted when the customer paid for a treatment within "
         f"{days} days; 'paid after consultation' is what they paid in those days, net of refunds."],
    )


# --- surveys --------------------------------------------------------------------------------------

async def surveys(conn: BaseDBAsyncClient, q: Query) -> Figures:
    where, args = q.days()
    rows = await fetch(
        conn,
        "SELECT branch_id, department_id, practitioner_id, SUM(responses) AS n, SUM(score_sum) AS s "
        f"FROM report_survey_day WHERE {where} GROUP BY branch_id, department_id, practitioner_id",
        args,
    )
    names = await partners.names(conn)
    out = []
    for r in sorted(rows, key=lambda r: (int(r["branch_id"]), int(r["department_id"]), int(r["practitioner_id"]))):
        b, d, p, n, s = (int(r[k]) for k in ("branch_id", "department_id", "practitioner_id", "n", "s"))
        out.append([b, names["branch"].get(b, ""), d, names["department"].get(d, ""), p,
                    names["practitioner"].get(p, "") if p else "", n, s, round(s / n, 2) if n else None])
    return Figures(
        [c("branch_id", "Branch id", "count"), c("branch", "Branch", "text"), c("department_id", "Department id", "count"),
         c("department", "Department", "text"), c("practitioner_id", "Doctor id", "count"),
         c("practitioner", "Doctor", "text"), c("responses", "Answers", "count"), c("score_sum", "Score total", "count"),
         c("average_score", "Average score", "score")],
        out, ["Survey answers on the clinic day they were given, by the branch, department and doctor of the visit."],
    )


# --- points liability -----------------------------------------------------------------------------

async def points(conn: BaseDBAsyncClient, q: Query) -> Figures:
    flows = await fetch(conn, "SELECT day, kind, points_in, points_out FROM report_points_day "
                              "WHERE day >= %s AND day <= %s", [q.date_from, q.date_to])
    snaps = await fetch(conn, "SELECT day, balance, pending, expiring_30, expiring_90 FROM report_points_liability "
                              "WHERE day >= %s AND day <= %s ORDER BY day", [q.date_from, q.date_to])
    per: dict[date, list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in flows:
        cell = per[as_day(r["day"]).replace(day=1)]
        cell[0] += int(r["points_in"])
        out_points = int(r["points_out"])
        if r["kind"] == "expiry":
            cell[2] += out_points
        else:
            cell[1] += out_points
    last_snap: dict[date, dict[str, Any]] = {}
    for r in snaps:
        last_snap[as_day(r["day"]).replace(day=1)] = r
    out = []
    for m in months_of(q.date_from, q.date_to):
        s = last_snap.get(m)
        out.append([month_label(m), *per[m], per[m][0] - per[m][1] - per[m][2],
                    *([int(s[k]) for k in ("balance", "pending", "expiring_30", "expiring_90")] if s else [None] * 4),
                    as_day(s["day"]).isoformat() if s else None])
    return Figures(
        [c("month", "Month", "month"), c("issued", "Points issued", "points"), c("spent", "Points spent", "points"),
         c("expired", "Points expired", "points"), c("net", "Net change", "points"),
         c("balance", "Spendable (owed)", "points"), c("pending", "Pending", "points"),
         c("expiring_30", "Expiring in 30 days", "points"), c("expiring_90", "Expiring in 90 days", "points"),
         c("as_of", "Liability taken on", "date")],
        out,
        ["Issued, spent and expired are the points ledger's movements on their clinic day (a reversal counts as "
         "spent back). Liability is the last snapshot of the month in the range: spendable balances, points still "
         "pending in the refund window, and what of the spendable expires within 30 and 90 days of that day."],
    )


# --- referral rewards against the revenue of referred customers -----------------------------------

async def referral_roi(conn: BaseDBAsyncClient, q: Query) -> Figures:
    rewards = await fetch(conn, "SELECT day, paid_fen, paid_points, rewards, reversed_fen FROM report_referral_reward_day "
                                "WHERE day >= %s AND day <= %s", [q.date_from, q.date_to])
    where, args = q.days(extra=" AND source_kind = 'customer_referral'")
    revenue = await fetch(conn, f"SELECT day, amount_fen, refunded_fen FROM report_sales_day WHERE {where}", args)
    per: dict[date, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for r in rewards:
        cell = per[as_day(r["day"]).replace(day=1)]
        cell[0] += int(r["rewards"])
        cell[1] += int(r["paid_fen"])
        cell[2] += int(r["paid_points"])
        cell[3] += int(r["reversed_fen"])
    for r in revenue:
        per[as_day(r["day"]).replace(day=1)][4] += int(r["amount_fen"]) - int(r["refunded_fen"])
    out = []
    for m in months_of(q.date_from, q.date_to):
        n, paid, pts, rev, income = per[m]
        out.append([month_label(m), n, paid, pts, rev, paid - rev, income, bp(paid - rev, income)])
    return Figures(
        [c("month", "Month", "month"), c("rewards", "Rewards paid", "count"), c("paid_fen", "Cash paid", "fen"),
         c("paid_points", "Points credited", "points"), c("reversed_fen", "Clawed back", "fen"),
         c("net_reward_fen", "Net cash rewards", "fen"), c("referred_revenue_fen", "Revenue of referred customers", "fen"),
         c("cost_bp", "Rewards / revenue", "bp")],
        out,
        ["Rewards on the clinic day they were paid (cash) or credited (points); claw-backs of paid cash on the day "
         "the refund created them. Revenue is the net consumption (after refunds) of customers who came through a "
         "customer's referral, on the day of the consumption."],
    )


# --- top 20% of customers' share of revenue ------------------------------------------------------

async def top_customers(conn: BaseDBAsyncClient, q: Query) -> Figures:
    first, last = q.date_from.replace(day=1), q.date_to.replace(day=1)
    rows = await fetch(
        conn,
        "SELECT month, customers, revenue_fen, top_customers, top_revenue_fen FROM report_top_share_month "
        "WHERE month >= %s AND month <= %s AND branch_id = %s",
        [first, last, -1 if q.branch_id is None else q.branch_id],
    )
    by_month = {as_day(r["month"]): r for r in rows}
    out = []
    for m in months_of(first, last):
        r = by_month.get(m)
        revenue, top = (int(r["revenue_fen"]), int(r["top_revenue_fen"])) if r else (0, 0)
        out.append([month_label(m), int(r["customers"]) if r else 0, revenue, int(r["top_customers"]) if r else 0,
                    top, bp(top, revenue)])
    return Figures(
        [c("month", "Month", "month"), c("customers", "Paying customers", "count"),
         c("revenue_fen", "Revenue", "fen"), c("top_customers", "Top 20% customers", "count"),
         c("top_revenue_fen", "Their revenue", "fen"), c("top_share_bp", "Their share", "bp")],
        out,
        ["Per clinic month (the range is widened to the months it touches): revenue is net of refunds, on the "
         "day of the consumption; the top 20% are the ceil(20%) customers with the most revenue in the month "
         "(at the branch, when one is given)."],
    )


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
