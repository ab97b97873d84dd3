"""Reads that shape the CRM's responses: customer search and the customer card (360), lists for staff,
and an outreach's results with lift against its holdout."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from crm import partners, segments
from crm.models import (
    Acquisition,
    AcquisitionChannel,
    Outreach,
    OutreachRecipient,
    RfmHistory,
    RfmMovement,
    RfmScore,
    Segment,
    SegmentEvent,
    StaffReward,
    StaffRewardStatus,
    Tag,
)
from crm.outreach import get_outreach, marketing_state
from crm.tags import tags_of
from kernel import clock, crypto, sql
from kernel.identity.service import get_customer

LAST4_LENGTH = 4


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


@dataclass
class CustomerFilters:
    q: str | None = None
    tier_id: int | None = None
    tag_id: int | None = None
    rfm_class: str | None = None
    branch_id: int | None = None
    last_visit_within_days: int | None = None
    spend_gte_fen: int | None = None
    birthday_month: int | None = None

    def groups(self) -> list[list[dict[str, Any]]]:
        conditions = [
            ("tier", "in", [self.tier_id] if self.tier_id else None),
            ("tag", "in", [self.tag_id] if self.tag_id else None),
            ("rfm_class", "in", [self.rfm_class] if self.rfm_class else None),
            ("branch", "in", [self.branch_id] if self.branch_id else None),
            ("last_visit_days", "within", self.last_visit_within_days),
            ("spend_fen", "gte", self.spend_gte_fen),
            ("birthday_month", "in", [self.birthday_month] if self.birthday_month else None),
        ]
        return [[{"field": f, "op": op, "value": v}] for f, op, v in conditions if v is not None]


async def search_customers(conn: BaseDBAsyncClient, filters: CustomerFilters, *, limit: int,
                           offset: int) -> tuple[int, list[dict[str, Any]]]:
    """Search by name, referral code or the phone's last four digits, narrowed by filters. Newest first.

    Four digits match the keyed hash of the last four (`尾号`); the number itself is never stored in clear,
    never compared in clear and never returned (rows carry the masked phone only).
    """
    rules = segments.normalise({"groups": filters.groups()}) if filters.groups() else {"groups": []}
    where, args = segments.compile_where(conn, rules)
    q = (filters.q or "").strip()
    if q:
        if q.isdigit() and len(q) == LAST4_LENGTH:
            where += " AND c.phone_last4_hash = %s"
            args.append(crypto.last4_hash(q))
        else:
            where += " AND (c.referral_code = %s OR c.nickname LIKE %s)"
            args.extend([q.upper(), _like(q)])
    total = await sql.fetch(conn, f"SELECT COUNT(*) AS n FROM {segments.FROM_CUSTOMERS} WHERE {where}", args)
    rows = await sql.fetch(
        conn,
        "SELECT c.id, c.nickname, c.phone_masked, c.referral_code, c.birth_date, c.created_at, s.rfm_class "
        f"FROM {segments.FROM_CUSTOMERS} WHERE {where} "
        f"ORDER BY c.id DESC LIMIT {int(limit)} OFFSET {int(offset)}",
        args,
    )
    # SQLite hands raw DATE/DATETIME columns back as text: typed here so both stacks answer the same JSON.
    for row in rows:
        row["created_at"] = sql.instant(row["created_at"])
        row["birth_date"] = sql.day(row["birth_date"])
    return int(total[0]["n"]), rows


@dataclass
class CustomerCard:
    customer: Any
    acquisition: Acquisition | None
    opt_out: bool
    consents: list[Any]
    tags: list[tuple[Tag, Any]]
    rfm: RfmScore | None
    rfm_history: list[RfmHistory]
    record: Any
    points: dict[str, Any]
    orders: list[dict[str, Any]]
    vouchers: list[dict[str, Any]]
    referrals: dict[str, Any]
    outreach: list[tuple[OutreachRecipient, str]] = field(default_factory=list)


async def customer_card(conn: BaseDBAsyncClient, customer_id: int) -> CustomerCard:
    customer = await get_customer(conn, customer_id)
    profile, consents = await marketing_state(conn, customer_id)
    received = await OutreachRecipient.filter(customer_id=customer_id).using_db(conn).order_by("-id").limit(20)
    names = dict(await Outreach.filter(id__in=[r.outreach_id for r in received]).using_db(conn).values_list("id", "name"))
    return CustomerCard(
        customer=customer,
        acquisition=await Acquisition.get_or_none(customer_id=customer_id, using_db=conn),
        opt_out=profile.marketing_opt_out,
        consents=consents,
        tags=await tags_of(conn, customer_id),
        rfm=await RfmScore.get_or_none(customer_id=customer_id, using_db=conn),
        rfm_history=await RfmHistory.filter(customer_id=customer_id).using_db(conn).order_by("-as_of").limit(90),
        record=await partners.customer_record(conn, customer_id),
        points=await partners.points_summary(conn, customer_id),
        orders=await partners.recent_orders(conn, customer_id),
        vouchers=await partners.recent_vouchers(conn, customer_id),
        referrals=await partners.referral_summary(conn, customer_id),
        outreach=[(r, names.get(r.outreach_id, "")) for r in received],
    )


async def tags(conn: BaseDBAsyncClient, *, category: str | None, kind: str | None, limit: int,
               offset: int) -> tuple[int, list[Tag]]:
    query = Tag.filter(deleted_at=None).using_db(conn)
    if category:
        query = query.filter(category=category)
    if kind:
        query = query.filter(kind=kind)
    return await query.count(), await query.order_by("category", "code").offset(offset).limit(limit)


async def movements(conn: BaseDBAsyncClient, *, as_of: date | None, from_class: str | None, to_class: str | None,
                    limit: int, offset: int) -> tuple[int, list[RfmMovement]]:
    query = RfmMovement.all().using_db(conn)
    if as_of:
        query = query.filter(as_of=as_of)
    if from_class:
        query = query.filter(from_class=from_class)
    if to_class:
        query = query.filter(to_class=to_class)
    return await query.count(), await query.order_by("-as_of", "id").offset(offset).limit(limit)


async def rfm_distribution(conn: BaseDBAsyncClient) -> dict[str, int]:
    rows = await sql.fetch(conn, "SELECT rfm_class, COUNT(*) AS n FROM crm_rfm_score GROUP BY rfm_class")
    return {str(r["rfm_class"]): int(r["n"]) for r in rows}


async def segment_list(conn: BaseDBAsyncClient, *, limit: int, offset: int) -> tuple[int, list[Segment]]:
    query = Segment.filter(deleted_at=None).using_db(conn)
    return await query.count(), await query.order_by("-id").offset(offset).limit(limit)


async def segment_events(conn: BaseDBAsyncClient, segment_id: int, *, after_id: int, limit: int) -> list[SegmentEvent]:
    """The entered/left feed of a segment, in order: a consumer keeps the last id it has seen."""
    await segments.get_segment(conn, segment_id)
    return await SegmentEvent.filter(segment_id=segment_id, id__gt=after_id).using_db(conn).order_by("id").limit(limit)


async def segment_members(conn: BaseDBAsyncClient, segment_id: int, *, limit: int, offset: int) -> tuple[int, list[int]]:
    from crm.models import SegmentMember

    await segments.get_segment(conn, segment_id)
    query = SegmentMember.filter(segment_id=segment_id).using_db(conn)
    return await query.count(), list(await query.order_by("customer_id").offset(offset).limit(limit).values_list(
        "customer_id", flat=True))


async def outreach_list(conn: BaseDBAsyncClient, *, limit: int, offset: int) -> tuple[int, list[Outreach]]:
    query = Outreach.all().using_db(conn)
    return await query.count(), await query.order_by("-id").offset(offset).limit(limit)


@dataclass(frozen=True)
class GroupResult:
    customers: int
    booked: int
    redeemed: int
    paid: int

    def rate_bp(self, n: int) -> int:
        return n * 10_000 // self.customers if self.customers else 0


@dataclass(frozen=True)
class OutreachResults:
    outreach: Outreach
    counts: dict[str, int]
    recipients: GroupResult
    holdout: GroupResult
    window_start: datetime | None
    window_end: datetime | None


async def outreach_results(conn: BaseDBAsyncClient, outreach_id: int) -> OutreachResults:
    """What happened within `lift_days` of the run: bookings, redemptions of this outreach's voucher or coupon,
    and paid orders of the recipients against the holdout's.

    Intention to treat: the recipients are every member the hash put outside the holdout, whatever happened to
    them (opted out, over the cap, no consent, out of stock, message failed), because the holdout is the same
    hash's other side and keeps its own customers who would have been skipped. Leaving the skipped out compared
    the reachable part of one side with all of the other, and flattered or blamed the outreach for who was
    reachable rather than for what it did."""
    outreach = await get_outreach(conn, outreach_id)
    rows = await OutreachRecipient.filter(outreach_id=outreach_id).using_db(conn).values(
        "customer_id", "holdout", "voucher_outcome", "coupon_outcome", "message_outcome", "skip_reason")
    # A figure for each thing this outreach gives or sends, and none for what it does not: a coupon-only
    # outreach showed "vouchers issued 0" beside its coupons, which staff read as no coupon given.
    counts: dict[str, int] = {"members": len(rows), "holdout": 0}
    if outreach.voucher_title:
        counts["vouchers_issued"] = 0
    if outreach.coupon_template_id is not None:
        counts["coupons_issued"] = 0
    if outreach.template_id:
        counts["messages_sent"] = counts["messages_failed"] = 0
    for r in rows:
        counts["holdout"] += r["holdout"]
        if r["voucher_outcome"] == "issued":
            counts["vouchers_issued"] += 1
        if r["coupon_outcome"]:
            # A coupon not given says why (coupons_no_stock, coupons_limit_reached, coupons_template_off).
            key = "coupons_issued" if r["coupon_outcome"] == "issued" else "coupons_" + r["coupon_outcome"]
            counts[key] = counts.get(key, 0) + 1
        if r["message_outcome"] in ("sent", "failed"):
            counts["messages_" + r["message_outcome"]] += 1
        if r["skip_reason"]:
            counts["skipped_" + r["skip_reason"]] = counts.get("skipped_" + r["skip_reason"], 0) + 1
    treated = [r["customer_id"] for r in rows if not r["holdout"]]
    held = [r["customer_id"] for r in rows if r["holdout"]]
    start = outreach.started_at
    end = start + timedelta(days=outreach.lift_days) if start else None
    empty = GroupResult(0, 0, 0, 0)
    if start is None:
        return OutreachResults(outreach, counts, empty, empty, None, None)
    # The window is [start, end) and what has happened by now, the reading instant included: a payment made at
    # the instant the results are read counts. Instants are whole microseconds (Python, DATETIME(6)), so the
    # half-open bound one microsecond past now means "at or before now" to the queries that take [start, end).
    end_now = min(end, clock.now() + timedelta(microseconds=1))
    # A conversion of the gift: its voucher redeemed at a branch or its coupon used on a paid order.
    used = [await partners.outreach_voucher_redemptions(conn, outreach_id),
            await partners.outreach_coupon_redemptions(conn, outreach_id)]
    redeemed = {c for found in used for c, at in found.items() if at and start <= at < end_now}

    async def group(ids: list[int]) -> GroupResult:
        return GroupResult(
            customers=len(ids),
            booked=len(await partners.customers_who_booked(conn, ids, start, end_now)),
            redeemed=len(redeemed & set(ids)),
            paid=len(await partners.customers_who_paid(conn, ids, start, end_now)),
        )

    return OutreachResults(outreach, counts, await group(treated), await group(held), start, end)


async def channels(conn: BaseDBAsyncClient, *, limit: int, offset: int) -> tuple[int, list[AcquisitionChannel]]:
    query = AcquisitionChannel.all().using_db(conn)
    return await query.count(), await query.order_by("id").offset(offset).limit(limit)


async def staff_rewards(conn: BaseDBAsyncClient, *, staff_id: int | None, status: StaffRewardStatus | None,
                        limit: int, offset: int) -> tuple[int, list[StaffReward]]:
    query = StaffReward.all().using_db(conn)
    if staff_id:
        query = query.filter(staff_id=staff_id)
    if status is not None:
        query = query.filter(status=status)
    return await query.count(), await query.order_by("-id").offset(offset).limit(limit)
