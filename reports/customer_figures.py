"""Reports on customers and revenue: new customers by source, repurchase, RFM classes and moves, referral
rewards against referred revenue, the top 20% customers' share. Each reads summary tables only."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from crm.models import RFM_LABELS, RfmClass, SourceKind
from kernel import clock
from reports import partners
from reports.figures import Figures, Query, bp, c, month_label, months_of
from reports.settings import get_report_settings
from reports.sql import day as as_day, fetch, month_sql


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
