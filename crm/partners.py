"""Calls into other rooms (points_mall, booking, campaigns, referrals, orders) and the reads of their tables.

Every cross-room call of the CRM room goes through this module (coupons: the orders room's `issue_coupon`), so
the seams are in one place. The set-based reads the segment compiler and the nightly scoring need (a subquery
per condition, an aggregate per chunk of customers) are SQL over other rooms' tables; they live here, named
in the CRM's words, so a room that renames a column has one file to look at. Other rooms never import crm.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from booking import service as booking
from campaigns.referrals import service as referrals
from kernel import sql
from points_mall import vouchers

OUTREACH_VOUCHER_SOURCE = "crm_outreach"
BIRTHDAY_VOUCHER_SOURCE = "crm_birthday"


# --- consumption (points room's table) ------------------------------------------------------------

async def consumption_aggregates(
    conn: BaseDBAsyncClient, first_id: int, last_id: int, *, window_start: datetime, until: datetime
) -> list[dict[str, Any]]:
    """Per customer in [first_id, last_id]: last consumption, count and net spend since window_start.

    A consumption refunded in full does not count (neither as a visit nor as recency); net spend is
    amount minus refunds. Only consumptions before `until` count, so a re-run scores the same day alike.
    """
    return await sql.fetch(
        conn,
        "SELECT customer_id, "
        "MAX(CASE WHEN amount_fen > refunded_fen THEN occurred_at END) AS last_at, "
        "SUM(CASE WHEN occurred_at >= %s AND amount_fen > refunded_fen THEN 1 ELSE 0 END) AS frequency, "
        "SUM(CASE WHEN occurred_at >= %s THEN amount_fen - refunded_fen ELSE 0 END) AS monetary "
        "FROM points_consumption WHERE customer_id BETWEEN %s AND %s AND occurred_at < %s "
        "GROUP BY customer_id",
        [window_start, window_start, first_id, last_id, until],
    )


def _unrewarded_staff_consumptions(conn: BaseDBAsyncClient, valid_days: int, acquired: str) -> str:
    # The consumptions that earn a staff reward and have none yet, of customers whose `a.acquired_at` meets
    # `acquired` (one placeholder): the scan's horizon and what fell outside it are the same rule.
    return (
        "FROM crm_acquisition a "
        "JOIN crm_acquisition_channel ch ON ch.id = a.channel_id "
        "JOIN points_consumption p ON p.customer_id = a.customer_id "
        f"AND {sql.within_days(conn, 'p.occurred_at', 'a.acquired_at', valid_days)} "
        f"WHERE a.kind = 'staff' AND a.acquired_at {acquired} AND ch.staff_id IS NOT NULL "
        "AND (ch.staff_customer_id IS NULL OR ch.staff_customer_id <> a.customer_id) "
        "AND NOT EXISTS (SELECT 1 FROM crm_staff_reward r WHERE r.consumption_id = p.id) "
    )


_UNREWARDED_STAFF_COLUMNS = "SELECT p.id, p.customer_id, p.amount_fen, p.occurred_at, a.acquired_at, ch.staff_id "


async def unrewarded_staff_consumptions(
    conn: BaseDBAsyncClient, *, acquired_since: datetime, valid_days: int, limit: int
) -> list[dict[str, Any]]:
    """Consumptions that earn a staff reward and have none yet (the staff-reward scan), in id order.

    The customer came through a staff channel at or after `acquired_since`, the consumption is within
    `valid_days` of their arrival and is not the staff member's own (their linked account). Read by what is
    not yet rewarded rather than after an id cursor: an id is taken at insert, so a consumption whose
    transaction commits late can have a lower id than one already read, and a cursor would step over it.
    """
    return await sql.fetch(
        conn,
        _UNREWARDED_STAFF_COLUMNS + _unrewarded_staff_consumptions(conn, valid_days, ">= %s")
        + f"ORDER BY p.id LIMIT {int(limit)}",
        [acquired_since],
    )


async def unrewarded_staff_consumptions_before(
    conn: BaseDBAsyncClient, *, acquired_before: datetime, valid_days: int, limit: int
) -> list[dict[str, Any]]:
    """The same consumptions of customers acquired before the scan's horizon (`acquired_before`), in id order:
    the scan never reaches them."""
    return await sql.fetch(
        conn,
        _UNREWARDED_STAFF_COLUMNS + _unrewarded_staff_consumptions(conn, valid_days, "< %s")
        + f"ORDER BY p.id LIMIT {int(limit)}",
        [acquired_before],
    )


async def net_of_consumptions(conn: BaseDBAsyncClient, consumption_ids: list[int]) -> dict[int, int]:
    if not consumption_ids:
        return {}
    rows = await sql.fetch(
        conn,
        f"SELECT id, amount_fen - refunded_fen AS net FROM points_consumption WHERE id IN {sql.in_list(consumption_ids)}",
        consumption_ids,
    )
    return {int(r["id"]): int(r["net"]) for r in rows}


async def customer_consumed_since(conn: BaseDBAsyncClient, customer_id: int, since: datetime) -> bool:
    rows = await sql.fetch(
        conn,
        "SELECT 1 AS x FROM points_consumption WHERE customer_id = %s AND occurred_at >= %s "
        "AND amount_fen > refunded_fen LIMIT 1",
        [customer_id, since],
    )
    return bool(rows)


# --- segment conditions over other rooms' tables (SQL fragments on the outer alias `c`) -------------
# Written as `c.id IN (SELECT customer_id ...)` rather than correlated EXISTS: MariaDB materialises each
# subquery once (a hash of ids) instead of probing it for each of 100,000 customers (docs/benchmarks.md).

def tier_in(ids: list[int]) -> tuple[str, list[Any]]:
    return f"c.id IN (SELECT customer_id FROM points_account WHERE tier_id IN {sql.in_list(ids)})", list(ids)


def points_balance(op: str, value: int) -> tuple[str, list[Any]]:
    clause = "c.id IN (SELECT customer_id FROM points_account WHERE balance >= %s)"
    # Below a balance: also customers who have no account yet (a balance of zero).
    return (clause if op == "gte" else f"NOT {clause}"), [value]


def qualified_referrals_at_least(count: int) -> tuple[str, list[Any]]:
    if count <= 0:
        return "1 = 1", []
    return ("c.id IN (SELECT referrer_id FROM referral_binding WHERE status = 'qualified' "
            "GROUP BY referrer_id HAVING COUNT(*) >= %s)", [count])


def booked_at_branch(ids: list[int]) -> tuple[str, list[Any]]:
    return (f"c.id IN (SELECT customer_id FROM booking_booking WHERE status <> 'cancelled' "
            f"AND branch_id IN {sql.in_list(ids)})", list(ids))


def booked_department(ids: list[int]) -> tuple[str, list[Any]]:
    return (f"c.id IN (SELECT customer_id FROM booking_booking WHERE status <> 'cancelled' "
            f"AND department_id IN {sql.in_list(ids)})", list(ids))


def joined_campaign(ids: list[int]) -> tuple[str, list[Any]]:
    return (f"c.id IN (SELECT customer_id FROM gb_entry WHERE status IN ('paid', 'fulfilled') "
            f"AND campaign_id IN {sql.in_list(ids)})", list(ids))


def upcoming_booking(now: datetime) -> tuple[str, list[Any]]:
    return "c.id IN (SELECT customer_id FROM booking_booking WHERE status = 'booked' AND starts_at > %s)", [now]


async def customers_with_upcoming_booking(conn: BaseDBAsyncClient, ids: list[int], now: datetime) -> set[int]:
    if not ids:
        return set()
    rows = await sql.fetch(
        conn,
        f"SELECT DISTINCT customer_id FROM booking_booking WHERE status = 'booked' AND starts_at > %s "
        f"AND customer_id IN {sql.in_list(ids)}",
        [now, *ids],
    )
    return {int(r["customer_id"]) for r in rows}


async def booked_departments(conn: BaseDBAsyncClient, first_id: int, last_id: int) -> list[dict[str, Any]]:
    """(customer, department code) pairs of non-cancelled bookings: the interest rule tags."""
    return await sql.fetch(
        conn,
        "SELECT DISTINCT bb.customer_id, d.code FROM booking_booking bb JOIN booking_department d "
        "ON d.id = bb.department_id WHERE bb.customer_id BETWEEN %s AND %s AND bb.status <> 'cancelled'",
        [first_id, last_id],
    )


async def triage_departments(conn: BaseDBAsyncClient, first_id: int, last_id: int) -> list[dict[str, Any]]:
    """(customer, department code) pairs from pre-triage forms: the department the customer picked and the
    one their answers were routed to (booking stores both in clear when the form is submitted).

    The answers themselves stay sealed: they are health data, and the routing already says what the
    customer came about, so marketing never needs them decrypted.
    """
    return await sql.fetch(
        conn,
        "SELECT DISTINCT t.customer_id, d.code FROM booking_triage_submission t JOIN booking_department d "
        "ON d.id = t.department_id OR d.id = t.suggested_department_id WHERE t.customer_id BETWEEN %s AND %s",
        [first_id, last_id],
    )


async def departments(conn: BaseDBAsyncClient) -> list[dict[str, Any]]:
    return await sql.fetch(conn, "SELECT id, code, name FROM booking_department ORDER BY id")


# --- consultations (booking room) ----------------------------------------------------------------

async def consultation_visits(conn: BaseDBAsyncClient, completed_from: datetime, completed_to: datetime,
                              limit: int) -> list[dict[str, Any]]:
    """Completed visits that were consultations: with a pre-triage form, without a service, or for a
    service that needs a consultation first. Not yet followed up by the CRM."""
    return await sql.fetch(
        conn,
        "SELECT bb.id, bb.customer_id, bb.completed_at FROM booking_booking bb "
        "LEFT JOIN booking_service s ON s.id = bb.service_id "
        "WHERE bb.status = 'completed' AND bb.completed_at >= %s AND bb.completed_at < %s "
        "AND (bb.triage_id IS NOT NULL OR bb.service_id IS NULL OR s.requires_consultation = 1) "
        "AND NOT EXISTS (SELECT 1 FROM crm_consultation_follow_up f WHERE f.booking_id = bb.id) "
        f"ORDER BY bb.id LIMIT {int(limit)}",
        [completed_from, completed_to],
    )


async def add_consultation_follow_up(conn: BaseDBAsyncClient, booking_id: int, *, days_after: int,
                                     note: str) -> int | None:
    task = await booking.add_consultation_follow_up(conn, booking_id, days_after=days_after, note=note)
    return task.id if task else None


# --- vouchers (points room) ----------------------------------------------------------------------

async def issue_outreach_voucher(conn: BaseDBAsyncClient, *, outreach_id: int, customer_id: int, title: str,
                                 valid_until: datetime, service_id: int | None) -> int:
    """One voucher per (outreach, customer): the source id makes a second issue return the first."""
    issued = await vouchers.issue_vouchers(
        conn, customer_id=customer_id, source_type=OUTREACH_VOUCHER_SOURCE, source_id=f"{outreach_id}:{customer_id}",
        title=title, quantity=1, valid_until=valid_until, service_id=service_id,
    )
    return issued[0].id


async def issue_birthday_voucher(conn: BaseDBAsyncClient, *, customer_id: int, year: int, title: str,
                                 valid_until: datetime) -> int:
    issued = await vouchers.issue_vouchers(
        conn, customer_id=customer_id, source_type=BIRTHDAY_VOUCHER_SOURCE, source_id=f"{customer_id}:{year}",
        title=title, quantity=1, valid_until=valid_until,
    )
    return issued[0].id


async def outreach_voucher_redemptions(conn: BaseDBAsyncClient, outreach_id: int) -> dict[int, datetime]:
    """customer → redemption instant of this outreach's vouchers."""
    rows = await sql.fetch(
        conn,
        "SELECT customer_id, redeemed_at FROM voucher WHERE source_type = %s AND source_id LIKE %s "
        "AND status = 'redeemed'",
        [OUTREACH_VOUCHER_SOURCE, f"{outreach_id}:%"],
    )
    return {int(r["customer_id"]): sql.instant(r["redeemed_at"]) for r in rows}


async def outreach_coupon_redemptions(conn: BaseDBAsyncClient, outreach_id: int) -> dict[int, datetime]:
    """customer → when this outreach's coupon was used on a paid order (a coupon given back by a full refund or
    a closed order is available again and does not count)."""
    rows = await sql.fetch(
        conn,
        "SELECT customer_id, used_at FROM shop_coupon WHERE source = 'outreach' AND source_ref = %s "
        "AND status = 'used'",
        [str(outreach_id)],
    )
    return {int(r["customer_id"]): sql.instant(r["used_at"]) for r in rows}


# --- coupons (orders room) -----------------------------------------------------------------------
# Each occasion has its own `source` and a ref that makes the issue once per what it stands for:
# an outreach × customer, a customer × year, a booking (the customer is part of the coupon's unique key).

async def coupon_template_problem(conn: BaseDBAsyncClient, template_id: int) -> str | None:
    """Why staff cannot name this coupon template (unknown, switched off), or None."""
    from orders.coupons import CouponTemplateNotFound, get_template

    try:
        template = await get_template(conn, template_id)
    except CouponTemplateNotFound:
        return "No such coupon template."
    return None if template.is_active else "This coupon template is switched off."


# Why a coupon gift was not given, as the recipient's `coupon_outcome` records it.
COUPON_LIMIT_REACHED = "limit_reached"  # the customer holds as many of the template as it allows
COUPON_TEMPLATE_OFF = "template_off"  # the template was switched off (or removed) since staff named it


async def _give_coupon(conn: BaseDBAsyncClient, *, customer_id: int, template_id: int, source: str,
                       ref: str) -> int | None:
    """The coupon's id, or None when the customer already holds as many of the template as it allows or the
    template was switched off since: a gift that cannot be given is skipped, never an error for the run.
    Nothing is written before those checks, so the caller's transaction goes on."""
    coupon_id, _, _ = await _give_coupon_once(conn, customer_id=customer_id, template_id=template_id,
                                              source=source, ref=ref)
    return coupon_id


async def _give_coupon_once(conn: BaseDBAsyncClient, *, customer_id: int, template_id: int, source: str,
                            ref: str) -> tuple[int | None, bool, str]:
    """As `_give_coupon`, whether this call issued it (False: none, or the one issued before for the ref), and
    why none was given ("" when one was): callers record the true reason, not one guessed from the None."""
    from orders.coupons import CouponLimitReached, CouponTemplateNotFound, issue_coupon

    try:
        coupon, created = await issue_coupon(conn, customer_id, template_id, source, ref)
    except CouponLimitReached:
        return None, False, COUPON_LIMIT_REACHED
    except CouponTemplateNotFound:
        return None, False, COUPON_TEMPLATE_OFF
    return coupon.id, created, ""


async def issue_outreach_coupon(conn: BaseDBAsyncClient, *, outreach_id: int, customer_id: int,
                                template_id: int) -> tuple[int | None, str]:
    """(coupon id, "") or (None, why not: `COUPON_LIMIT_REACHED` / `COUPON_TEMPLATE_OFF`)."""
    coupon_id, _, reason = await _give_coupon_once(conn, customer_id=customer_id, template_id=template_id,
                                                   source="outreach", ref=str(outreach_id))
    return coupon_id, reason


async def issue_birthday_coupon(conn: BaseDBAsyncClient, *, customer_id: int, year: int,
                                template_id: int) -> tuple[int | None, bool, str]:
    """(coupon id or None, issued now, why not): the birthday job counts only the coupons it gave."""
    return await _give_coupon_once(conn, customer_id=customer_id, template_id=template_id, source="birthday",
                                   ref=str(year))


async def issue_visit_coupon(conn: BaseDBAsyncClient, *, booking_id: int, customer_id: int,
                             template_id: int) -> int | None:
    return await _give_coupon(conn, customer_id=customer_id, template_id=template_id, source="visit",
                              ref=f"booking:{booking_id}")


async def completed_visit(conn: BaseDBAsyncClient, booking_id: int) -> dict[str, Any] | None:
    """The booking's customer when it is completed (booking room's table), else None."""
    rows = await sql.fetch(
        conn, "SELECT id, customer_id FROM booking_booking WHERE id = %s AND status = 'completed'",
        [booking_id])
    return rows[0] if rows else None


# --- lift: what recipients and holdout did afterwards ---------------------------------------------

async def customers_who_booked(conn: BaseDBAsyncClient, ids: list[int], start: datetime, end: datetime) -> set[int]:
    return await _ids(conn, "booking_booking", "created_at", ids, start, end, "status <> 'cancelled'")


async def customers_who_paid(conn: BaseDBAsyncClient, ids: list[int], start: datetime, end: datetime) -> set[int]:
    return await _ids(conn, "shop_order", "paid_at", ids, start, end, "paid_at IS NOT NULL")


async def _ids(conn, table: str, column: str, ids: list[int], start: datetime, end: datetime, extra: str) -> set[int]:
    found: set[int] = set()
    for i in range(0, len(ids), 1000):
        part = ids[i:i + 1000]
        rows = await sql.fetch(
            conn,
            f"SELECT DISTINCT customer_id FROM {table} WHERE {extra} AND {column} >= %s AND {column} < %s "
            f"AND customer_id IN {sql.in_list(part)}",
            [start, end, *part],
        )
        found.update(int(r["customer_id"]) for r in rows)
    return found


# --- the customer card (read-only views of other rooms) -------------------------------------------

async def customer_record(conn: BaseDBAsyncClient, customer_id: int):
    """Bookings, triage (decrypted: the caller audits the view), surveys and follow-ups."""
    return await booking.customer_record(conn, customer_id)


async def points_summary(conn: BaseDBAsyncClient, customer_id: int) -> dict[str, Any]:
    rows = await sql.fetch(
        conn,
        "SELECT pa.balance, pa.pending, pa.tier_id, t.name AS tier_name FROM points_account pa "
        "LEFT JOIN points_member_tier t ON t.id = pa.tier_id WHERE pa.customer_id = %s",
        [customer_id],
    )
    if not rows:
        return {"balance": 0, "pending": 0, "tier_id": None, "tier_name": None}
    return rows[0]


async def recent_orders(conn: BaseDBAsyncClient, customer_id: int, limit: int = 20) -> list[dict[str, Any]]:
    return await sql.fetch(
        conn,
        f"SELECT id, description, total_fen, status, created_at, paid_at FROM shop_order WHERE customer_id = %s "
        f"ORDER BY id DESC LIMIT {int(limit)}",
        [customer_id],
    )


async def recent_vouchers(conn: BaseDBAsyncClient, customer_id: int, limit: int = 20) -> list[dict[str, Any]]:
    return await sql.fetch(
        conn,
        f"SELECT id, title, status, source_type, issued_at, valid_until FROM voucher WHERE customer_id = %s "
        f"ORDER BY id DESC LIMIT {int(limit)}",
        [customer_id],
    )


async def referral_summary(conn: BaseDBAsyncClient, customer_id: int) -> dict[str, Any]:
    rows = await sql.fetch(
        conn,
        "SELECT COUNT(*) AS invited, SUM(CASE WHEN status = 'qualified' THEN 1 ELSE 0 END) AS qualified "
        "FROM referral_binding WHERE referrer_id = %s",
        [customer_id],
    )
    row = rows[0] if rows else {}
    return {"invited": int(row.get("invited") or 0), "qualified": int(row.get("qualified") or 0)}


# --- staff payouts (referrals room's finance batches) -----------------------------------------------

async def hand_over_staff_payout(conn: BaseDBAsyncClient, *, staff_id: int, ref: str, amount_fen: int,
                                 note: str) -> None:
    """The staff member becomes a payee of the next settlement batch. Idempotent on `ref`."""
    await referrals.add_staff_payout(conn, staff_id=staff_id, ref=ref, amount_fen=amount_fen, note=note)
