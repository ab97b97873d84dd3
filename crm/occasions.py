"""Moments the CRM acts on by itself: the birthday gift (once a year), the coupon after a completed visit
(once per booking), the follow-up of consultations that did not convert (咨询回访), and the coupon rules
staff set for the first two."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient

from crm import partners
from crm.errors import InvalidCouponRule
from crm.models import BirthdayGift, ConsultationFollowUp, CouponOccasion, CouponRule, MarketingProfile
from crm.settings import get_crm_settings
from kernel import clock, sql


async def coupon_rule(conn: BaseDBAsyncClient, occasion: CouponOccasion) -> CouponRule:
    """The occasion's rule; one staff never set gives no coupon (and the birthday voucher, as before)."""
    rule = await CouponRule.get_or_none(occasion=occasion).using_db(conn)
    return rule or CouponRule(occasion=occasion, coupon_template_id=None, with_voucher=True,
                              updated_at=clock.now())


async def coupon_rules(conn: BaseDBAsyncClient) -> list[CouponRule]:
    return [await coupon_rule(conn, occasion) for occasion in CouponOccasion]


async def set_coupon_rule(conn: BaseDBAsyncClient, occasion: CouponOccasion, *,
                          coupon_template_id: int | None, with_voucher: bool, staff_id: int) -> CouponRule:
    """Staff name the coupon template of an occasion (None: no coupon). An unknown or switched-off template is
    refused naming the field; the birthday gives at least something (a voucher, a coupon or both)."""
    if coupon_template_id is not None:
        problem = await partners.coupon_template_problem(conn, coupon_template_id)
        if problem:
            raise InvalidCouponRule(problem, field="coupon_template_id")
    if occasion == CouponOccasion.after_visit:
        with_voucher = False  # the after-visit gift is a coupon only
    elif not with_voucher and coupon_template_id is None:
        raise InvalidCouponRule("The birthday gift needs the voucher, a coupon or both.",
                                field="with_voucher")
    values = dict(coupon_template_id=coupon_template_id, with_voucher=with_voucher, updated_at=clock.now(),
                  updated_by_staff_id=staff_id)
    if not await CouponRule.filter(occasion=occasion).using_db(conn).update(**values):
        await CouponRule.create(occasion=occasion, **values, using_db=conn)
    return await coupon_rule(conn, occasion)


@dataclass
class BirthdayRun:
    """What a birthday run gave: customers given a gift, the vouchers and coupons in it, customers due a gift who
    got nothing (the rule's coupon template is switched off, or they hold as many as it allows), and gifts given
    without their coupon for the same reasons (`coupons_missing`; a later run gives the coupon, counted in
    `coupons`, the customer not counted again in `given`)."""

    given: int = 0
    vouchers: int = 0
    coupons: int = 0
    not_given: int = 0
    coupons_missing: int = 0

    def add(self, other: BirthdayRun) -> None:
        for name in ("given", "vouchers", "coupons", "not_given", "coupons_missing"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


# A gift whose coupon is missing for one of these reasons is looked at again by later runs of the month.
COUPON_MISSING = (partners.COUPON_LIMIT_REACHED, partners.COUPON_TEMPLATE_OFF)


async def _claim_gift_row(conn: BaseDBAsyncClient, customer_id: int, year: int, now: datetime) -> None:
    """The (customer, year) gift row, written if missing, locked exclusively at once by one upsert.

    Two runs of the job can race (it also runs at every worker's start-up). An INSERT IGNORE followed by a
    locking read deadlocked them on a row that existed (a gift whose coupon is missing): each run held the
    row's shared duplicate-key lock and waited for the other's to take it exclusively. The upsert takes the
    exclusive lock in one step, so the second run queues behind the first and then sees what it gave."""
    if sql.is_sqlite(conn):  # one writer at a time: nothing to race
        upsert = ("INSERT INTO crm_birthday_gift (customer_id, year, coupon_outcome, created_at) "
                  "VALUES (%s, %s, '', %s) ON CONFLICT (customer_id, year) DO NOTHING")
    else:
        upsert = ("INSERT INTO crm_birthday_gift (customer_id, year, coupon_outcome, created_at) "
                  "VALUES (%s, %s, '', %s) ON DUPLICATE KEY UPDATE id = id")
    await sql.execute(conn, upsert, [customer_id, year, now])


async def birthday_chunk(conn: BaseDBAsyncClient, after_id: int, limit: int) -> tuple[int, BirthdayRun]:
    """Give this year's birthday gift to customers (ids after `after_id`) born in the current local month.

    Returns (last id looked at or 0 when done, what was given). The year is the clinic-local year of the
    run, and (customer, year) is unique, so a job run twice, or on every day of the month, gives one gift.
    A customer who could be given nothing keeps no gift row: a later run of the month tries again (staff
    may switch the template back on), and only gifts given are counted. A gift given without its coupon (the
    voucher went out, the coupon could not) records why, and a later run of the month gives the coupon alone:
    never a second voucher (the row, locked, says one was given, and the voucher's source id is unique too).
    """
    today = clock.local_today()
    missing = ", ".join(f"'{reason}'" for reason in COUPON_MISSING)
    rows = await sql.fetch(
        conn,
        f"SELECT c.id FROM customer c WHERE c.id > %s AND c.deleted_at IS NULL AND c.birth_date IS NOT NULL "
        f"AND {sql.month_of(conn, 'c.birth_date')} = %s "
        f"AND NOT EXISTS (SELECT 1 FROM crm_birthday_gift g WHERE g.customer_id = c.id AND g.year = %s "
        f"AND (g.voucher_id IS NOT NULL OR g.coupon_id IS NOT NULL) AND g.coupon_outcome NOT IN ({missing})) "
        f"ORDER BY c.id LIMIT {int(limit)}",
        [after_id, today.month, today.year],
    )
    run = BirthdayRun()
    if not rows:
        return 0, run
    settings = get_crm_settings()
    rule = await coupon_rule(conn, CouponOccasion.birthday)
    zone = clock.clinic_zone()
    valid_until = datetime.combine(today + timedelta(days=settings.birthday_voucher_valid_days), time(0), tzinfo=zone)
    now = clock.now()
    for row in rows:
        customer_id = int(row["id"])
        await _claim_gift_row(conn, customer_id, today.year, now)
        gift = await BirthdayGift.filter(customer_id=customer_id, year=today.year).using_db(
            conn).select_for_update().first()
        given_before = gift.voucher_id is not None or gift.coupon_id is not None
        if given_before and gift.coupon_outcome not in COUPON_MISSING:
            continue  # a racing run gave it (or gave the missing coupon)
        if given_before:
            # Only the missing coupon, from the rule as it stands now (staff may have named another template, or
            # none: then the gift stays as it was given).
            if rule.coupon_template_id is None:
                continue
            gift.coupon_id, new_coupon, why_not = await partners.issue_birthday_coupon(
                conn, customer_id=customer_id, year=today.year, template_id=rule.coupon_template_id)
            gift.coupon_outcome = "issued" if gift.coupon_id is not None else why_not
            await gift.save(using_db=conn, update_fields=["coupon_id", "coupon_outcome"])
            run.coupons += new_coupon
            run.coupons_missing += gift.coupon_id is None
            continue
        new_coupon = False
        if rule.with_voucher:
            gift.voucher_id = await partners.issue_birthday_voucher(
                conn, customer_id=customer_id, year=today.year, title=settings.birthday_voucher_title,
                valid_until=valid_until,
            )
        if rule.coupon_template_id is not None:
            # Once per customer and year: the coupon's ref is the year (its unique key holds the customer).
            gift.coupon_id, new_coupon, why_not = await partners.issue_birthday_coupon(
                conn, customer_id=customer_id, year=today.year, template_id=rule.coupon_template_id)
            gift.coupon_outcome = "issued" if gift.coupon_id is not None else why_not
        if gift.voucher_id is None and gift.coupon_id is None:
            await gift.delete(using_db=conn)
            run.not_given += 1
            continue
        await gift.save(using_db=conn, update_fields=["voucher_id", "coupon_id", "coupon_outcome"])
        run.vouchers += gift.voucher_id is not None
        run.coupons += new_coupon
        run.coupons_missing += rule.coupon_template_id is not None and gift.coupon_id is None
        run.given += 1 if gift.voucher_id is not None or new_coupon else 0
    return int(rows[-1]["id"]), run


# How far back the consultation job looks (visits older than this were handled, or are too old to call).
CONSULTATION_LOOKBACK_DAYS = 30


async def consultation_chunk(conn: BaseDBAsyncClient, limit: int = 500) -> tuple[int, int]:
    """Consultation visits completed N days ago or more with no paid treatment since: a 咨询回访 task each.

    Every visit looked at gets a marker row (unique per booking), converted or not, so it is decided once.
    Returns (visits looked at, tasks created).
    """
    days = get_crm_settings().consultation_follow_up_days
    now = clock.now()
    visits = await partners.consultation_visits(
        conn, now - timedelta(days=days + CONSULTATION_LOOKBACK_DAYS), now - timedelta(days=days), limit
    )
    created = 0
    for visit in visits:
        completed_at = sql.instant(visit["completed_at"])
        task_id = None
        if not await partners.customer_consumed_since(conn, int(visit["customer_id"]), completed_at):
            task_id = await partners.add_consultation_follow_up(
                conn, int(visit["id"]), days_after=days,
                note=f"咨询回访: consultation on {completed_at.astimezone(clock.clinic_zone()).date()} "
                     f"not followed by a paid treatment within {days} days",
            )
            created += 1 if task_id else 0
        await ConsultationFollowUp.bulk_create(
            [ConsultationFollowUp(booking_id=int(visit["id"]), customer_id=int(visit["customer_id"]),
                                  follow_up_task_id=task_id, created_at=now)],
            ignore_conflicts=True, using_db=conn,
        )
    return len(visits), created


async def visit_coupon(conn: BaseDBAsyncClient, booking_id: int) -> int | None:
    """The after-visit coupon of a completed booking (the `crm.visit_completed` job the booking room writes
    when the front desk completes it): once per booking, whatever runs twice, by the coupon's unique (source
    'visit', ref 'booking:<id>', customer). No rule, an opted-out customer (PIPL: a coupon to come back is
    marketing), a booking not completed, or a customer at the template's limit: nothing. Returns its id."""
    rule = await coupon_rule(conn, CouponOccasion.after_visit)
    if rule.coupon_template_id is None:
        return None
    visit = await partners.completed_visit(conn, booking_id)
    if visit is None:
        return None
    customer_id = int(visit["customer_id"])
    profile = await MarketingProfile.get_or_none(customer_id=customer_id).using_db(conn)
    if profile is not None and profile.marketing_opt_out:
        return None
    return await partners.issue_visit_coupon(conn, booking_id=booking_id, customer_id=customer_id,
                                             template_id=rule.coupon_template_id)
