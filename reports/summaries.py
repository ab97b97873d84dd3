"""The folds that keep the summary tables up to date, and the bulk rebuild they are checked against.

Two kinds of fold, chosen by how the source changes:

- **Append-only sources** (consumptions, consumption refunds, acquisitions, surveys, points ledger entries,
  voucher redemptions through the audit log) are folded incrementally: the rows after the family's cursor
  are read by primary key, their counts are *added* to the summary rows, and the cursor moves in the same
  transaction. A second run finds nothing after the cursor, so a fold runs exactly once per source row.
  A refund is its own row, added to the day of the consumption it refunds: the figure moves back.
- **Sources whose rows change state** (bookings, group buys, mall redemptions, referral rewards, RFM) are
  refolded: the summary rows of the days (or campaigns) that can still change are deleted and computed
  again from the source in one transaction, through an index on the day. Running it twice gives the same rows.

Each family locks its cursor row first (`SELECT ... FOR UPDATE`), so two workers (or a fold and the
rebuild) never fold one family at the same time. `rebuild` recomputes every table with bulk SQL and puts
the cursors at the tops it read up to; the nightly run of it also catches a row whose id was allocated
before a cursor moved past it but committed after (InnoDB hands out ids before commit).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from kernel import clock
from reports import partners
from reports.settings import get_report_settings
from reports.sql import (
    add_rows,
    clinic_day,
    day as as_day,
    day_bounds,
    execute,
    fetch,
    in_list,
    is_sqlite,
    month_start,
    replace_rows,
)

FAMILIES = ("consumption", "consumption_refund", "top_share", "acquisition", "rfm", "campaign", "mall", "voucher",
            "visit", "survey", "points", "referral_reward")


async def lock_cursor(conn: BaseDBAsyncClient, name: str) -> int:
    """The family's cursor, locked for this transaction (created at 0 the first time)."""
    if is_sqlite(conn):  # one writer at a time on SQLite anyway
        await execute(conn, "INSERT OR IGNORE INTO report_fold_cursor (name, position) VALUES (%s, 0)", [name])
        rows = await fetch(conn, "SELECT position FROM report_fold_cursor WHERE name = %s", [name])
    else:
        await execute(conn, "INSERT IGNORE INTO report_fold_cursor (name, position) VALUES (%s, 0)", [name])
        rows = await fetch(conn, "SELECT position FROM report_fold_cursor WHERE name = %s FOR UPDATE", [name])
    return int(rows[0]["position"])


async def move_cursor(conn: BaseDBAsyncClient, name: str, position: int) -> None:
    await execute(conn, "UPDATE report_fold_cursor SET position = %s, updated_at = %s WHERE name = %s",
                  [position, clock.now(), name])


def _chunk() -> int:
    return get_report_settings().fold_chunk


# --- consumptions and refunds (append-only) -------------------------------------------------------

async def fold_consumptions(conn: BaseDBAsyncClient, chunk: int | None = None) -> int:
    """Fold the next chunk of new consumptions; returns how many were folded (0 = caught up)."""
    after = await lock_cursor(conn, "consumption")
    rows = await partners.consumptions_after(conn, after, chunk or _chunk())
    if not rows:
        return 0
    await _add_sales(conn, rows, "amount_fen", "consumptions")
    await refresh_customer_visits(conn, await _visits_that_may_change(conn, rows, new_consumptions=True))
    await move_cursor(conn, "consumption", int(rows[-1]["id"]))
    return len(rows)


async def fold_consumption_refunds(conn: BaseDBAsyncClient, chunk: int | None = None) -> int:
    """Fold the next chunk of consumption refunds into the day, month and customer they take back from."""
    after = await lock_cursor(conn, "consumption_refund")
    rows = await partners.consumption_refunds_after(conn, after, chunk or _chunk())
    if not rows:
        return 0
    await _add_sales(conn, rows, "refunded_fen", None)
    await refresh_customer_visits(conn, await _visits_that_may_change(conn, rows, new_consumptions=False))
    await move_cursor(conn, "consumption_refund", int(rows[-1]["id"]))
    return len(rows)


async def _add_sales(conn: BaseDBAsyncClient, rows: list[dict[str, Any]], amount: str, count: str | None) -> None:
    days: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    months: dict[tuple, int] = defaultdict(int)
    for r in rows:
        d = clinic_day(r["occurred_at"])
        branch = int(r["branch_id"])
        fen = int(r[amount])
        cell = days[(d, branch, r["source_kind"] or "")]
        cell[0] += 1
        cell[1] += fen
        months[(month_start(d), branch, int(r["customer_id"]))] += fen
    if count:
        await add_rows(conn, "report_sales_day", ("day", "branch_id", "source_kind"), (count, amount),
                       [(*k, n, fen) for k, (n, fen) in days.items()])
    else:
        await add_rows(conn, "report_sales_day", ("day", "branch_id", "source_kind"), (amount,),
                       [(*k, fen) for k, (_, fen) in days.items()])
    await add_rows(conn, "report_customer_month", ("month", "branch_id", "customer_id"), (amount,),
                   [(*k, fen) for k, fen in months.items()])
    await mark_months_dirty(conn, sorted({k[0] for k in months}))


async def mark_months_dirty(conn: BaseDBAsyncClient, months: list[date]) -> None:
    if not months:
        return
    ignore = "OR IGNORE" if is_sqlite(conn) else "IGNORE"
    await execute(conn, f"INSERT {ignore} INTO report_dirty_month (month) VALUES {','.join(['(%s)'] * len(months))}",
                  months)


async def fold_top_share(conn: BaseDBAsyncClient) -> int:
    """Recompute the top-20% share of every month a consumption fold touched (per branch and overall).

    Ranking customers needs every customer of the month, so it is done once per touched month after the
    chunks, not per chunk: one window-function query per month over that month's customer rows.
    """
    await lock_cursor(conn, "top_share")
    months = [as_day(r["month"]) for r in await fetch(conn, "SELECT month FROM report_dirty_month ORDER BY month")]
    for month in months:
        rows = await partners.top_share_of_month(conn, month)
        await execute(conn, "DELETE FROM report_top_share_month WHERE month = %s", [month])
        await replace_rows(conn, "report_top_share_month",
                           ("month", "branch_id", "customers", "revenue_fen", "top_customers", "top_revenue_fen"),
                           [(month, int(r["b"]), int(r["customers"]), int(r["revenue"]), int(r["top_customers"]),
                             int(r["top_revenue"])) for r in rows])
        await execute(conn, "DELETE FROM report_dirty_month WHERE month = %s", [month])
    return len(months)


async def _visits_that_may_change(conn: BaseDBAsyncClient, rows: list[dict[str, Any]], *,
                                  new_consumptions: bool) -> list[int]:
    """The customers whose first two paid visits these rows can change.

    A new consumption changes them only when the customer has fewer than two visits or it falls before the
    second; a refund only when it is on the day of the first or the second (a refund in full removes a
    visit). Everyone else keeps their row, so a chunk does not reread the whole history of a customer who
    comes every week.
    """
    ids = sorted({int(r["customer_id"]) for r in rows})
    known: dict[int, tuple[date | None, date | None]] = {}
    for start in range(0, len(ids), 1000):
        part = ids[start:start + 1000]
        for v in await fetch(conn, "SELECT customer_id, first_day, second_day FROM report_customer_visits "
                                   f"WHERE customer_id IN {in_list(part)}", part):
            known[int(v["customer_id"])] = (as_day(v["first_day"]), as_day(v["second_day"]))
    changed = set()
    for r in rows:
        customer_id, d = int(r["customer_id"]), clinic_day(r["occurred_at"])
        first, second = known.get(customer_id, (None, None))
        if new_consumptions:
            if second is None or d < second:
                changed.add(customer_id)
        elif d in (first, second):
            changed.add(customer_id)
    return sorted(changed)


async def refresh_customer_visits(conn: BaseDBAsyncClient, customer_ids: list[int]) -> None:
    """Recompute these customers' first two paid visits from their consumptions (index customer, occurred_at).

    Computed from the rows as they are now rather than added up, because a refund in full can remove
    a visit: the second visit can become the first.
    """
    for start in range(0, len(customer_ids), 1000):
        ids = customer_ids[start:start + 1000]
        visits: dict[int, list[tuple[date, int]]] = {}
        for r in await partners.paid_consumptions_of(conn, ids):
            seen = visits.setdefault(int(r["customer_id"]), [])
            d = clinic_day(r["occurred_at"])
            if len(seen) < 2 and (not seen or seen[-1][0] != d):
                seen.append((d, int(r["branch_id"])))
        await execute(conn, f"DELETE FROM report_customer_visits WHERE customer_id IN {in_list(ids)}", ids)
        out = []
        for customer_id, seen in visits.items():
            first, branch = seen[0]
            second = seen[1][0] if len(seen) > 1 else None
            out.append((customer_id, first, branch, second, (second - first).days if second else None))
        await replace_rows(conn, "report_customer_visits",
                           ("customer_id", "first_day", "first_branch_id", "second_day", "gap_days"), out)


# --- acquisition (append-only) ----------------------------------------------------------------------

async def fold_acquisitions(conn: BaseDBAsyncClient, chunk: int | None = None) -> int:
    after = await lock_cursor(conn, "acquisition")
    rows = await partners.acquisitions_after(conn, after, chunk or _chunk())
    if not rows:
        return 0
    counts: dict[tuple, int] = defaultdict(int)
    for r in rows:
        counts[(clinic_day(r["acquired_at"]), r["kind"])] += 1
    await add_rows(conn, "report_acquisition_day", ("day", "source_kind"), ("customers",),
                   [(*k, n) for k, n in counts.items()])
    await move_cursor(conn, "acquisition", int(rows[-1]["customer_id"]))
    return len(rows)


# --- surveys and points ledger (append-only) ----------------------------------------------------

async def fold_surveys(conn: BaseDBAsyncClient, chunk: int | None = None) -> int:
    after = await lock_cursor(conn, "survey")
    rows = await partners.surveys_after(conn, after, chunk or _chunk())
    if not rows:
        return 0
    cells: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        key = (clinic_day(r["created_at"]), int(r["branch_id"]), int(r["department_id"]), int(r["practitioner_id"]))
        cells[key][0] += 1
        cells[key][1] += int(r["score"])
    await add_rows(conn, "report_survey_day", ("day", "branch_id", "department_id", "practitioner_id"),
                   ("responses", "score_sum"), [(*k, n, s) for k, (n, s) in cells.items()])
    await move_cursor(conn, "survey", int(rows[-1]["id"]))
    return len(rows)


async def fold_points(conn: BaseDBAsyncClient, chunk: int | None = None) -> int:
    after = await lock_cursor(conn, "points")
    rows = await partners.ledger_entries_after(conn, after, chunk or _chunk())
    if not rows:
        return 0
    cells: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        delta = int(r["delta"])
        cell = cells[(clinic_day(r["occurred_at"]), r["kind"])]
        if delta > 0:
            cell[0] += delta
        else:
            cell[1] -= delta
    await add_rows(conn, "report_points_day", ("day", "kind"), ("points_in", "points_out"),
                   [(*k, i, o) for k, (i, o) in cells.items()])
    await move_cursor(conn, "points", int(rows[-1]["id"]))
    return len(rows)


async def snapshot_liability(conn: BaseDBAsyncClient) -> dict[str, int]:
    """What the points owe now; today's row keeps the latest snapshot of the day."""
    await lock_cursor(conn, "liability")
    now = clock.now()
    figures = await partners.points_liability(conn, now, now + timedelta(days=30), now + timedelta(days=90))
    today = clock.local_today()
    await execute(conn, "DELETE FROM report_points_liability WHERE day = %s", [today])
    await replace_rows(conn, "report_points_liability",
                       ("day", "balance", "pending", "expiring_30", "expiring_90", "taken_at"),
                       [(today, figures["balance"], figures["pending"], figures["expiring_30"],
                         figures["expiring_90"], now)])
    return figures


# --- vouchers redeemed (through the audit log, append-only) ----------------------------------------

async def fold_vouchers(conn: BaseDBAsyncClient, chunk: int | None = None) -> int:
    after = await lock_cursor(conn, "voucher")
    rows = await partners.voucher_redemptions_after(conn, after, chunk or _chunk())
    if not rows:
        return 0
    counts: dict[tuple, int] = defaultdict(int)
    for r in rows:
        if r["id"] is None or r["redeemed_at"] is None:
            continue  # an audit row whose voucher is gone or was not redeemed after all
        counts[(clinic_day(r["redeemed_at"]), int(r["branch_id"]), r["source_type"])] += 1
    await add_rows(conn, "report_voucher_day", ("day", "branch_id", "source_type"), ("redeemed",),
                   [(*k, n) for k, n in counts.items()])
    await move_cursor(conn, "voucher", int(rows[-1]["audit_id"]))
    return len(rows)


# --- refolded families (rows that change state) ------------------------------------------------

async def fold_visits(conn: BaseDBAsyncClient, chunk: int | None = None) -> int:
    """Refold the booking days that can still change, and the days new bookings fall on."""
    settings = get_report_settings()
    after = await lock_cursor(conn, "visit")
    top, days = await partners.booking_days_after(conn, after, chunk or _chunk())
    today = clock.local_today()
    days |= {today - timedelta(days=n) for n in range(settings.visit_refold_days + 1)}
    ordered = sorted(days)
    branches = await partners.branch_ids(conn)
    rows = await partners.visit_days(conn, branches, ordered, settings.conversion_days)
    await execute(conn, f"DELETE FROM report_visit_day WHERE day IN {in_list(ordered)}", ordered)
    await replace_rows(
        conn, "report_visit_day",
        ("day", "branch_id", "department_id", "practitioner_id", "bookings", "no_shows", "consultations",
         "converted", "converted_fen"),
        [(as_day(r["d"]), int(r["branch_id"]), int(r["department_id"]), int(r["practitioner_id"]),
          int(r["bookings"] or 0), int(r["no_shows"] or 0), int(r["consultations"] or 0), int(r["converted"] or 0),
          int(r["converted_fen"] or 0)) for r in rows],
    )
    await move_cursor(conn, "visit", top)
    return top - after and 1


async def fold_mall(conn: BaseDBAsyncClient, chunk: int | None = None) -> int:
    after = await lock_cursor(conn, "mall")
    top, days = await partners.mall_redemption_days_after(conn, after, chunk or _chunk())
    today = clock.local_today()
    days |= {today - timedelta(days=get_report_settings().mall_refold_days), today}
    first, last = min(days), max(days)
    lo, hi = day_bounds(first, last)
    rows = await partners.mall_days(conn, lo, hi)
    await execute(conn, "DELETE FROM report_mall_day WHERE day >= %s AND day <= %s", [first, last])
    await _insert_mall(conn, rows)
    await move_cursor(conn, "mall", top)
    return top - after and 1


async def _insert_mall(conn: BaseDBAsyncClient, rows: list[dict[str, Any]]) -> None:
    await replace_rows(conn, "report_mall_day", ("day", "redemptions", "units", "cancelled_units", "points_spent"),
                       [(as_day(r["d"]), int(r["redemptions"]), int(r["units"] or 0), int(r["cancelled"] or 0),
                         int(r["points"] or 0)) for r in rows])


async def fold_campaigns(conn: BaseDBAsyncClient, *, everything: bool = False) -> int:
    """Recompute the funnel of every campaign that has not been over for long (all of them when asked)."""
    await lock_cursor(conn, "campaign")
    ended_after = None if everything else clock.now() - timedelta(days=get_report_settings().campaign_refold_days)
    campaigns = await partners.campaigns_to_fold(conn, ended_after)
    now = clock.now()
    for c in campaigns:
        f = await partners.campaign_funnel(conn, int(c["id"]))
        await execute(conn, "DELETE FROM report_campaign_funnel WHERE campaign_id = %s", [c["id"]])
        branch_ids = c["branch_ids"]
        await replace_rows(
            conn, "report_campaign_funnel",
            ("campaign_id", "title", "kind", "first_day", "last_day", "branch_ids", "views", "opened", "joined", "paid",
             "succeeded", "virtually_completed", "failed", "refunded", "paid_fen", "refunded_fen", "folded_at"),
            [(int(c["id"]), c["title"], c["kind"], clinic_day(c["starts_at"]), clinic_day(c["ends_at"]),
              branch_ids if isinstance(branch_ids, str) or branch_ids is None else _json(branch_ids),
              f["views"], f["opened"], f["joined"], f["paid"], f["succeeded"], f["virtually_completed"], f["failed"],
              f["refunded"], f["paid_fen"], f["refunded_fen"], now)],
        )
    return len(campaigns)


def _json(value: Any) -> str:
    import json
    return json.dumps(value)


async def fold_rfm(conn: BaseDBAsyncClient) -> int:
    """Class sizes of the latest scoring day, and the movements of the scoring days since the last fold."""
    await lock_cursor(conn, "rfm")
    sizes = await partners.rfm_class_sizes_latest(conn)
    days = sorted({as_day(r["as_of"]) for r in sizes})
    if days:
        await execute(conn, f"DELETE FROM report_rfm_class_day WHERE as_of IN {in_list(days)}", days)
        await replace_rows(conn, "report_rfm_class_day", ("as_of", "rfm_class", "customers"),
                           [(as_day(r["as_of"]), r["rfm_class"], int(r["n"])) for r in sizes])
    last = await fetch(conn, "SELECT MAX(as_of) AS d FROM report_rfm_movement_day")
    since = as_day(last[0]["d"]) or date(1970, 1, 1)
    moves = await partners.rfm_movements_since(conn, since)
    await execute(conn, "DELETE FROM report_rfm_movement_day WHERE as_of >= %s", [since])
    await replace_rows(conn, "report_rfm_movement_day", ("as_of", "from_class", "to_class", "customers"),
                       [(as_day(r["as_of"]), r["from_class"], r["to_class"], int(r["n"])) for r in moves])
    return len(days)


async def fold_referral_rewards(conn: BaseDBAsyncClient) -> int:
    await lock_cursor(conn, "referral_reward")
    cells: dict[date, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for r in await partners.referral_reward_days(conn):
        cell = cells[as_day(r["d"])]
        if r["kind"] == "paid":
            cell[0] += int(r["fen"] or 0)
            cell[1] += int(r["points"] or 0)
            cell[2] += int(r["rewards"] or 0)
        else:
            cell[3] += int(r["fen"] or 0)
    await execute(conn, "DELETE FROM report_referral_reward_day")
    await replace_rows(conn, "report_referral_reward_day", ("day", "paid_fen", "paid_points", "rewards", "reversed_fen"),
                       [(d, *v) for d, v in cells.items()])
    return len(cells)


# --- the bulk rebuild ------------------------------------------------------------------------------

async def rebuild(conn: BaseDBAsyncClient) -> dict[str, int]:
    """Recompute every summary table from its source with bulk SQL; cursors move to what was read.

    MariaDB only (window functions and its date arithmetic); the embedded SQLite stack relies on the folds.
    """
    for name in FAMILIES:
        await lock_cursor(conn, name)
    consumption_top = await partners.max_ids(conn, "points_consumption")
    refund_top = await partners.max_ids(conn, "points_consumption_refund")
    await partners.rebuild_sales(conn, consumption_top, refund_top)
    await partners.rebuild_customer_visits(conn, consumption_top)
    await execute(conn, "DELETE FROM report_top_share_month")
    await mark_months_dirty(conn, [as_day(r["month"]) for r in
                                   await fetch(conn, "SELECT DISTINCT month FROM report_customer_month")])
    await fold_top_share(conn)
    acquisition_top = await partners.acquisition_top(conn)
    await partners.rebuild_acquisition(conn, acquisition_top)
    survey_top = await partners.max_ids(conn, "booking_survey")
    await partners.rebuild_surveys(conn, survey_top)
    ledger_top = await partners.max_ids(conn, "points_ledger_entry")
    await partners.rebuild_points_days(conn, ledger_top)
    audit_top = await partners.audit_top(conn)
    await partners.rebuild_vouchers(conn)
    await execute(conn, "DELETE FROM report_mall_day")
    await _insert_mall(conn, await partners.mall_days(conn, None, None))
    mall_top = await partners.max_ids(conn, "mall_redemption")
    settings = get_report_settings()
    await execute(conn, "DELETE FROM report_visit_day")
    await replace_rows(
        conn, "report_visit_day",
        ("day", "branch_id", "department_id", "practitioner_id", "bookings", "no_shows", "consultations",
         "converted", "converted_fen"),
        [(as_day(r["d"]), int(r["branch_id"]), int(r["department_id"]), int(r["practitioner_id"]),
          int(r["bookings"] or 0), int(r["no_shows"] or 0), int(r["consultations"] or 0), int(r["converted"] or 0),
          int(r["converted_fen"] or 0)) for r in await partners.visit_days(conn, [], None, settings.conversion_days)],
    )
    booking_top = await partners.max_ids(conn, "booking_booking")
    campaigns = await fold_campaigns(conn, everything=True)
    await fold_referral_rewards(conn)
    await fold_rfm(conn)
    for name, top in (("consumption", consumption_top), ("consumption_refund", refund_top),
                      ("acquisition", acquisition_top), ("survey", survey_top), ("points", ledger_top),
                      ("voucher", audit_top), ("mall", mall_top), ("visit", booking_top)):
        await move_cursor(conn, name, top)
    return {"consumptions": consumption_top, "refunds": refund_top, "campaigns": campaigns}


async def rebuild_rfm_history(conn: BaseDBAsyncClient) -> int:
    """Backfill every scoring day's class sizes from the CRM's history (once, when reports are installed)."""
    await lock_cursor(conn, "rfm")
    rows = await partners.rfm_class_sizes_history(conn)
    await execute(conn, "DELETE FROM report_rfm_class_day")
    await replace_rows(conn, "report_rfm_class_day", ("as_of", "rfm_class", "customers"),
                       [(as_day(r["as_of"]), r["rfm_class"], int(r["n"])) for r in rows])
    return len(rows)
