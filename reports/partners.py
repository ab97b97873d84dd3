"""Reads of other rooms' tables (points, orders, group buys, booking, referrals, CRM, staff audit log).

Every read the reports room makes of another room goes through this module, named in the reports' words,
so a room that renames a column has one file to look at. All of it is set-based SQL: the folds read new
rows by primary key after a cursor (never a scan of a whole table per fold), and the rebuilds aggregate a
whole table once. Other rooms never import reports.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from reports.sql import clinic_day_sql, day as as_day, execute, fetch, in_list, month_sql, plus_days_sql

# --- consumption (points room) ---------------------------------------------------------------------

async def consumptions_after(conn: BaseDBAsyncClient, after_id: int, limit: int) -> list[dict[str, Any]]:
    """New consumptions in id order, with the customer's acquisition source (CRM)."""
    return await fetch(
        conn,
        "SELECT c.id, c.customer_id, c.amount_fen, COALESCE(c.branch_id, 0) AS branch_id, c.occurred_at, "
        "COALESCE(a.kind, '') AS source_kind FROM points_consumption c "
        "LEFT JOIN crm_acquisition a ON a.customer_id = c.customer_id "
        f"WHERE c.id > %s ORDER BY c.id LIMIT {int(limit)}",
        [after_id],
    )


async def consumption_refunds_after(conn: BaseDBAsyncClient, after_id: int, limit: int) -> list[dict[str, Any]]:
    """New consumption refunds in id order, with the day, branch and customer of what they refund."""
    return await fetch(
        conn,
        "SELECT r.id, r.refunded_fen, c.customer_id, COALESCE(c.branch_id, 0) AS branch_id, c.occurred_at, "
        "COALESCE(a.kind, '') AS source_kind FROM points_consumption_refund r "
        "JOIN points_consumption c ON c.id = r.consumption_id "
        "LEFT JOIN crm_acquisition a ON a.customer_id = c.customer_id "
        f"WHERE r.id > %s ORDER BY r.id LIMIT {int(limit)}",
        [after_id],
    )


async def paid_consumptions_of(conn: BaseDBAsyncClient, customer_ids: list[int]) -> list[dict[str, Any]]:
    """The consumptions of these customers not refunded in full, oldest first (index customer, occurred_at)."""
    if not customer_ids:
        return []
    return await fetch(
        conn,
        "SELECT customer_id, id, occurred_at, COALESCE(branch_id, 0) AS branch_id FROM points_consumption "
        f"WHERE customer_id IN {in_list(customer_ids)} AND amount_fen > refunded_fen "
        "ORDER BY customer_id, occurred_at, id",
        customer_ids,
    )


async def max_ids(conn: BaseDBAsyncClient, table: str) -> int:
    rows = await fetch(conn, f"SELECT COALESCE(MAX(id), 0) AS top FROM {table}")
    return int(rows[0]["top"])


async def rebuild_sales(conn: BaseDBAsyncClient, consumption_top: int, refund_top: int) -> None:
    """report_sales_day and report_customer_month from every consumption and refund up to the tops."""
    day = clinic_day_sql(conn, "c.occurred_at")
    await execute(conn, "DELETE FROM report_sales_day")
    await execute(conn, "DELETE FROM report_customer_month")
    await execute(
        conn,
        "INSERT INTO report_sales_day (day, branch_id, source_kind, consumptions, amount_fen, refunded_fen) "
        f"SELECT {day}, COALESCE(c.branch_id, 0), COALESCE(a.kind, ''), COUNT(*), SUM(c.amount_fen), 0 "
        "FROM points_consumption c LEFT JOIN crm_acquisition a ON a.customer_id = c.customer_id "
        f"WHERE c.id <= %s GROUP BY {day}, COALESCE(c.branch_id, 0), COALESCE(a.kind, '')",
        [consumption_top],
    )
    await _add_refunds_bulk(
        conn, "report_sales_day", ("day", "branch_id", "source_kind"),
        f"{day}, COALESCE(c.branch_id, 0), COALESCE(a.kind, '')", refund_top, with_source=True,
    )
    month = month_sql(conn, day)
    await execute(
        conn,
        "INSERT INTO report_customer_month (month, branch_id, customer_id, amount_fen, refunded_fen) "
        f"SELECT {month}, COALESCE(c.branch_id, 0), c.customer_id, SUM(c.amount_fen), 0 "
        "FROM points_consumption c "
        f"WHERE c.id <= %s GROUP BY {month}, COALESCE(c.branch_id, 0), c.customer_id",
        [consumption_top],
    )
    await _add_refunds_bulk(
        conn, "report_customer_month", ("month", "branch_id", "customer_id"),
        f"{month}, COALESCE(c.branch_id, 0), c.customer_id", refund_top, with_source=False,
    )


async def _add_refunds_bulk(conn: BaseDBAsyncClient, table: str, keys: tuple[str, ...], key_sql: str,
                            refund_top: int, *, with_source: bool) -> None:
    join = "LEFT JOIN crm_acquisition a ON a.customer_id = c.customer_id " if with_source else ""
    select = (f"SELECT {key_sql}, SUM(r.refunded_fen) FROM points_consumption_refund r "
              f"JOIN points_consumption c ON c.id = r.consumption_id {join}WHERE r.id <= %s GROUP BY {key_sql}")
    columns = ", ".join(keys)
    if conn.capabilities.dialect == "sqlite":
        # SQLite needs a WHERE before ON CONFLICT when the insert reads a SELECT.
        sql = (f"INSERT INTO {table} ({columns}, refunded_fen) SELECT * FROM ({select}) WHERE 1 "
               f"ON CONFLICT ({columns}) DO UPDATE SET refunded_fen = refunded_fen + excluded.refunded_fen")
    else:
        sql = (f"INSERT INTO {table} ({columns}, refunded_fen) {select} "
               "ON DUPLICATE KEY UPDATE refunded_fen = refunded_fen + VALUES(refunded_fen)")
    await execute(conn, sql, [refund_top])


async def top_share_of_month(conn: BaseDBAsyncClient, month: date) -> list[dict[str, Any]]:
    """Per branch (and -1 for every branch): customers with net revenue in the month, their revenue, and the
    count and revenue of the top ceil(20%) of them (rank r is in the top when 5r <= n + 4)."""

    def ranked(key: str, group: str) -> str:
        return (
            f"SELECT b, MAX(cnt) AS customers, SUM(s) AS revenue, "
            "SUM(CASE WHEN 5 * rn <= cnt + 4 THEN 1 ELSE 0 END) AS top_customers, "
            "SUM(CASE WHEN 5 * rn <= cnt + 4 THEN s ELSE 0 END) AS top_revenue FROM ("
            "  SELECT b, s, ROW_NUMBER() OVER (PARTITION BY b ORDER BY s DESC, customer_id) AS rn, "
            "  COUNT(*) OVER (PARTITION BY b) AS cnt FROM ("
            f"    SELECT {key} AS b, customer_id, SUM(amount_fen - refunded_fen) AS s FROM report_customer_month "
            f"    WHERE month = %s GROUP BY {group} HAVING SUM(amount_fen - refunded_fen) > 0"
            "  ) per_customer"
            ") r GROUP BY b"
        )

    per_branch = await fetch(conn, ranked("branch_id", "branch_id, customer_id"), [month])
    overall = await fetch(conn, ranked("-1", "customer_id"), [month])
    return per_branch + overall


async def rebuild_customer_visits(conn: BaseDBAsyncClient, consumption_top: int) -> None:
    """report_customer_visits for everyone: the first two clinic days with a paid consumption."""
    day = clinic_day_sql(conn, "occurred_at")
    await execute(conn, "DELETE FROM report_customer_visits")
    # Per customer and paid day, then the first two days per customer (window functions: MariaDB ≥ 10.2).
    await execute(
        conn,
        "INSERT INTO report_customer_visits (customer_id, first_day, first_branch_id, second_day, gap_days) "
        "SELECT customer_id, MAX(CASE WHEN n = 1 THEN d END), MAX(CASE WHEN n = 1 THEN b END), "
        "MAX(CASE WHEN n = 2 THEN d END), NULL FROM ("
        "  SELECT customer_id, d, b, ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY d) AS n FROM ("
        f"    SELECT customer_id, {day} AS d, "
        "     CAST(SUBSTRING(MIN(CONCAT(DATE_FORMAT(occurred_at, '%%Y%%m%%d%%H%%i%%s%%f'), LPAD(id, 20, '0'), "
        "       '|', COALESCE(branch_id, 0))), 42) AS SIGNED) AS b "
        f"    FROM points_consumption WHERE amount_fen > refunded_fen AND id <= %s GROUP BY customer_id, {day}"
        "  ) per_day"
        ") ranked WHERE n <= 2 GROUP BY customer_id",
        [consumption_top],
    )
    await execute(conn, "UPDATE report_customer_visits SET gap_days = DATEDIFF(second_day, first_day) "
                        "WHERE second_day IS NOT NULL")


# --- acquisition (CRM) ---------------------------------------------------------------------------

async def acquisitions_after(conn: BaseDBAsyncClient, after_customer_id: int, limit: int) -> list[dict[str, Any]]:
    return await fetch(
        conn,
        "SELECT customer_id, kind, acquired_at FROM crm_acquisition WHERE customer_id > %s "
        f"ORDER BY customer_id LIMIT {int(limit)}",
        [after_customer_id],
    )


async def acquisition_top(conn: BaseDBAsyncClient) -> int:
    rows = await fetch(conn, "SELECT COALESCE(MAX(customer_id), 0) AS top FROM crm_acquisition")
    return int(rows[0]["top"])


async def rebuild_acquisition(conn: BaseDBAsyncClient, top: int) -> None:
    day = clinic_day_sql(conn, "acquired_at")
    await execute(conn, "DELETE FROM report_acquisition_day")
    await execute(
        conn,
        "INSERT INTO report_acquisition_day (day, source_kind, customers) "
        f"SELECT {day}, kind, COUNT(*) FROM crm_acquisition WHERE customer_id <= %s GROUP BY {day}, kind",
        [top],
    )


# --- RFM (CRM) -----------------------------------------------------------------------------------

async def rfm_class_sizes_latest(conn: BaseDBAsyncClient) -> list[dict[str, Any]]:
    """Class sizes of the latest scoring (the CRM keeps one score row per customer)."""
    return await fetch(conn, "SELECT as_of, rfm_class, COUNT(*) AS n FROM crm_rfm_score GROUP BY as_of, rfm_class")


async def rfm_movements_since(conn: BaseDBAsyncClient, since: date) -> list[dict[str, Any]]:
    """Movement counts per scoring day from `since` on (index as_of, from_class, to_class)."""
    return await fetch(
        conn,
        "SELECT as_of, COALESCE(from_class, '') AS from_class, to_class, COUNT(*) AS n FROM crm_rfm_movement "
        "WHERE as_of >= %s GROUP BY as_of, COALESCE(from_class, ''), to_class",
        [since],
    )


async def rfm_class_sizes_history(conn: BaseDBAsyncClient) -> list[dict[str, Any]]:
    """Every scoring day's class sizes from the CRM's history (a backfill; the history is large)."""
    return await fetch(conn, "SELECT as_of, rfm_class, COUNT(*) AS n FROM crm_rfm_history GROUP BY as_of, rfm_class")


# --- group buys and their orders ------------------------------------------------------------------

async def campaigns_to_fold(conn: BaseDBAsyncClient, ended_after: datetime | None) -> list[dict[str, Any]]:
    """Campaigns whose funnel can still change (not ended before `ended_after`); all when it is None."""
    where, args = ("", []) if ended_after is None else ("WHERE ends_at >= %s", [ended_after])
    return await fetch(conn, f"SELECT id, title, kind, starts_at, ends_at, branch_ids FROM gb_campaign {where}", args)


async def campaign_funnel(conn: BaseDBAsyncClient, campaign_id: int) -> dict[str, Any]:
    groups = await fetch(
        conn,
        "SELECT COALESCE(SUM(share_views), 0) AS views, COUNT(*) AS opened, "
        "COALESCE(SUM(status = 'succeeded'), 0) AS succeeded, "
        "COALESCE(SUM(status = 'succeeded' AND `virtual`), 0) AS virtually_completed, "
        "COALESCE(SUM(status = 'failed'), 0) AS failed FROM gb_group WHERE campaign_id = %s",
        [campaign_id],
    )
    entries = await fetch(
        conn,
        "SELECT COALESCE(SUM(e.role IN ('member', 'buyer')), 0) AS joined, "
        "COALESCE(SUM(e.paid_at IS NOT NULL), 0) AS paid, "
        "COALESCE(SUM(e.status IN ('refunding', 'refunded')), 0) AS refunded, "
        "COALESCE(SUM(CASE WHEN e.paid_at IS NOT NULL THEN o.paid_fen ELSE 0 END), 0) AS paid_fen, "
        "COALESCE(SUM(CASE WHEN e.paid_at IS NOT NULL THEN o.refunded_fen ELSE 0 END), 0) AS refunded_fen "
        "FROM gb_entry e JOIN shop_order o ON o.id = e.order_id WHERE e.campaign_id = %s",
        [campaign_id],
    )
    return {**{k: int(v) for k, v in groups[0].items()}, **{k: int(v) for k, v in entries[0].items()}}


# --- the points mall and vouchers ---------------------------------------------------------------

async def mall_redemption_days_after(conn: BaseDBAsyncClient, after_id: int, limit: int) -> tuple[int, set[date]]:
    """The clinic days of new redemptions and the last id seen."""
    day = clinic_day_sql(conn, "created_at")
    rows = await fetch(
        conn, f"SELECT id, {day} AS d FROM mall_redemption WHERE id > %s ORDER BY id LIMIT {int(limit)}", [after_id]
    )
    return (int(rows[-1]["id"]) if rows else after_id), {as_day(r["d"]) for r in rows}


async def mall_days(conn: BaseDBAsyncClient, lo: datetime | None, hi: datetime | None) -> list[dict[str, Any]]:
    """Redemptions per clinic day made in [lo, hi) (index created_at); every day when lo is None."""
    day = clinic_day_sql(conn, "created_at")
    where, args = ("", []) if lo is None else ("WHERE created_at >= %s AND created_at < %s", [lo, hi])
    return await fetch(
        conn,
        f"SELECT {day} AS d, COUNT(*) AS redemptions, SUM(quantity) AS units, SUM(cancelled_quantity) AS cancelled, "
        f"SUM(points_spent) AS points FROM mall_redemption {where} GROUP BY {day}",
        args,
    )


async def voucher_redemptions_after(conn: BaseDBAsyncClient, after_audit_id: int, limit: int) -> list[dict[str, Any]]:
    """Vouchers redeemed, found through the staff audit log (every redemption is audited in its transaction)."""
    return await fetch(
        conn,
        "SELECT l.id AS audit_id, v.id, v.redeemed_at, COALESCE(v.redeemed_branch_id, 0) AS branch_id, v.source_type "
        "FROM audit_log l LEFT JOIN voucher v ON l.target_type = 'voucher' AND v.id = l.target_id "
        f"WHERE l.id > %s AND l.action = 'voucher.redeem' ORDER BY l.id LIMIT {int(limit)}",
        [after_audit_id],
    )


async def audit_top(conn: BaseDBAsyncClient) -> int:
    return await max_ids(conn, "audit_log")


async def rebuild_vouchers(conn: BaseDBAsyncClient) -> None:
    day = clinic_day_sql(conn, "redeemed_at")
    await execute(conn, "DELETE FROM report_voucher_day")
    await execute(
        conn,
        "INSERT INTO report_voucher_day (day, branch_id, source_type, redeemed) "
        f"SELECT {day}, COALESCE(redeemed_branch_id, 0), source_type, COUNT(*) FROM voucher "
        f"WHERE redeemed_at IS NOT NULL GROUP BY {day}, COALESCE(redeemed_branch_id, 0), source_type",
    )


# --- bookings, consultations and surveys (booking room) ------------------------------------------

async def branch_ids(conn: BaseDBAsyncClient) -> list[int]:
    return [int(r["id"]) for r in await fetch(conn, "SELECT id FROM booking_branch")]


async def booking_days_after(conn: BaseDBAsyncClient, after_id: int, limit: int) -> tuple[int, set[date]]:
    rows = await fetch(
        conn, f"SELECT id, local_date FROM booking_booking WHERE id > %s ORDER BY id LIMIT {int(limit)}", [after_id]
    )
    return (int(rows[-1]["id"]) if rows else after_id), {as_day(r["local_date"]) for r in rows}


async def visit_days(conn: BaseDBAsyncClient, branches: list[int], days: list[date] | None,
                     conversion_days: int) -> list[dict[str, Any]]:
    """Bookings per local day, branch, department and doctor on these days (index branch, local_date,
    status), or on every day when `days` is None (the rebuild).

    A consultation is a completed visit with a pre-triage form, without a service, or for a service that
    needs a consultation first (the CRM's definition). It converted when the same customer paid for a
    consumption not refunded in full within `conversion_days` after it was completed.
    """
    where, args = "", []
    if days is not None:
        where = f"WHERE b.branch_id IN {in_list(branches)} AND b.local_date IN {in_list(days)}"
        args = [*branches, *days]
    consult = ("(b.status = 'completed' AND (b.triage_id IS NOT NULL OR b.service_id IS NULL "
               "OR sv.requires_consultation = 1))")
    until = plus_days_sql(conn, "b.completed_at", conversion_days)
    window = (f"c.customer_id = b.customer_id AND c.occurred_at >= b.completed_at "
              f"AND c.occurred_at < {until} AND c.amount_fen > c.refunded_fen")
    return await fetch(
        conn,
        "SELECT b.local_date AS d, b.branch_id, b.department_id, COALESCE(s.practitioner_id, 0) AS practitioner_id, "
        "SUM(b.status <> 'cancelled') AS bookings, SUM(b.status = 'no_show') AS no_shows, "
        f"SUM({consult}) AS consultations, "
        f"SUM({consult} AND EXISTS (SELECT 1 FROM points_consumption c WHERE {window})) AS converted, "
        f"SUM(CASE WHEN {consult} THEN (SELECT COALESCE(SUM(c.amount_fen - c.refunded_fen), 0) "
        f"  FROM points_consumption c WHERE {window}) ELSE 0 END) AS converted_fen "
        "FROM booking_booking b JOIN booking_slot s ON s.id = b.slot_id "
        f"LEFT JOIN booking_service sv ON sv.id = b.service_id {where} "
        "GROUP BY b.local_date, b.branch_id, b.department_id, COALESCE(s.practitioner_id, 0)",
        args,
    )


async def surveys_after(conn: BaseDBAsyncClient, after_id: int, limit: int) -> list[dict[str, Any]]:
    return await fetch(
        conn,
        "SELECT sv.id, sv.score, sv.created_at, b.branch_id, b.department_id, "
        "COALESCE(s.practitioner_id, 0) AS practitioner_id FROM booking_survey sv "
        "JOIN booking_booking b ON b.id = sv.booking_id JOIN booking_slot s ON s.id = b.slot_id "
        f"WHERE sv.id > %s ORDER BY sv.id LIMIT {int(limit)}",
        [after_id],
    )


async def rebuild_surveys(conn: BaseDBAsyncClient, top: int) -> None:
    day = clinic_day_sql(conn, "sv.created_at")
    await execute(conn, "DELETE FROM report_survey_day")
    await execute(
        conn,
        "INSERT INTO report_survey_day (day, branch_id, department_id, practitioner_id, responses, score_sum) "
        f"SELECT {day}, b.branch_id, b.department_id, COALESCE(s.practitioner_id, 0), COUNT(*), SUM(sv.score) "
        "FROM booking_survey sv JOIN booking_booking b ON b.id = sv.booking_id "
        "JOIN booking_slot s ON s.id = b.slot_id WHERE sv.id <= %s "
        f"GROUP BY {day}, b.branch_id, b.department_id, COALESCE(s.practitioner_id, 0)",
        [top],
    )


async def names(conn: BaseDBAsyncClient) -> dict[str, dict[int, str]]:
    """Branch, department and doctor names for report rows (small catalogue tables)."""
    out: dict[str, dict[int, str]] = {}
    for key, table in (("branch", "booking_branch"), ("department", "booking_department"),
                       ("practitioner", "booking_practitioner")):
        out[key] = {int(r["id"]): r["name"] for r in await fetch(conn, f"SELECT id, name FROM {table}")}
    return out


# --- points (points room) -------------------------------------------------------------------------

async def ledger_entries_after(conn: BaseDBAsyncClient, after_id: int, limit: int) -> list[dict[str, Any]]:
    return await fetch(
        conn, f"SELECT id, kind, delta, occurred_at FROM points_ledger_entry WHERE id > %s ORDER BY id LIMIT {int(limit)}",
        [after_id],
    )


async def rebuild_points_days(conn: BaseDBAsyncClient, top: int) -> None:
    day = clinic_day_sql(conn, "occurred_at")
    await execute(conn, "DELETE FROM report_points_day")
    await execute(
        conn,
        "INSERT INTO report_points_day (day, kind, points_in, points_out) "
        f"SELECT {day}, kind, SUM(CASE WHEN delta > 0 THEN delta ELSE 0 END), "
        f"SUM(CASE WHEN delta < 0 THEN -delta ELSE 0 END) FROM points_ledger_entry WHERE id <= %s GROUP BY {day}, kind",
        [top],
    )


async def points_liability(conn: BaseDBAsyncClient, now: datetime, in_30: datetime, in_90: datetime) -> dict[str, int]:
    """Spendable and pending points now, and what of the spendable expires within 30 and 90 days."""
    totals = await fetch(conn, "SELECT COALESCE(SUM(balance), 0) AS balance, COALESCE(SUM(pending), 0) AS pending "
                               "FROM points_account")
    expiring = await fetch(
        conn,
        "SELECT COALESCE(SUM(CASE WHEN expires_at <= %s THEN remaining ELSE 0 END), 0) AS e30, "
        "COALESCE(SUM(remaining), 0) AS e90 FROM points_lot WHERE expires_at > %s AND expires_at <= %s AND remaining > 0",
        [in_30, now, in_90],
    )
    return {"balance": int(totals[0]["balance"]), "pending": int(totals[0]["pending"]),
            "expiring_30": int(expiring[0]["e30"]), "expiring_90": int(expiring[0]["e90"])}


# --- referral rewards (referrals room) ------------------------------------------------------------

async def referral_reward_days(conn: BaseDBAsyncClient) -> list[dict[str, Any]]:
    """Rewards paid per clinic day (cash fen and points) and paid cash clawed back per day.

    The rewards tables hold one row per qualified referral (thousands, not millions), so the fold
    re-aggregates them whole each time instead of keeping a cursor over rows that change state.
    """
    paid_day = clinic_day_sql(conn, "paid_at")
    adj_day = clinic_day_sql(conn, "created_at")
    paid = await fetch(
        conn,
        f"SELECT {paid_day} AS d, COUNT(*) AS rewards, "
        "SUM(CASE WHEN kind = 'cash' THEN amount_fen ELSE 0 END) AS fen, "
        "SUM(CASE WHEN kind = 'points' THEN points ELSE 0 END) AS points "
        f"FROM referral_reward WHERE paid_at IS NOT NULL AND kind IN ('cash', 'points') GROUP BY {paid_day}",
    )
    clawed = await fetch(
        conn, f"SELECT {adj_day} AS d, SUM(-amount_fen) AS fen FROM referral_reward_adjustment GROUP BY {adj_day}"
    )
    return [{"kind": "paid", **r} for r in paid] + [{"kind": "reversed", **r} for r in clawed]


# --- staff (kernel identity) -----------------------------------------------------------------------

async def staff_exists(conn: BaseDBAsyncClient, staff_id: int) -> bool:
    return bool(await fetch(conn, "SELECT 1 AS x FROM staff_member WHERE id = %s", [staff_id]))
