"""Reports on operations: the group-buy funnel, mall redemptions and vouchers used, consultations and
conversions, survey scores, points liability. Each reads summary tables only."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from reports import partners
from reports.figures import Figures, Query, bp, c, month_label, months_of
from reports.settings import get_report_settings
from reports.sql import day as as_day, fetch


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
