"""Moments the CRM acts on by itself: the birthday gift (once a year) and the follow-up of consultations
that did not convert (咨询回访)."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient

from crm import partners, sql
from crm.models import BirthdayGift, ConsultationFollowUp
from crm.settings import get_crm_settings
from kernel import clock


async def birthday_chunk(conn: BaseDBAsyncClient, after_id: int, limit: int) -> tuple[int, int]:
    """Give this year's birthday voucher to customers (ids after `after_id`) born in the current local month.

    Returns (last id looked at or 0 when done, vouchers given). The year is the clinic-local year of the
    run, and (customer, year) is unique, so a job run twice, or on every day of the month, gives one gift.
    """
    today = clock.local_today()
    rows = await sql.fetch(
        conn,
        f"SELECT c.id FROM customer c WHERE c.id > %s AND c.deleted_at IS NULL AND c.birth_date IS NOT NULL "
        f"AND {sql.month_of(conn, 'c.birth_date')} = %s "
        f"AND NOT EXISTS (SELECT 1 FROM crm_birthday_gift g WHERE g.customer_id = c.id AND g.year = %s) "
        f"ORDER BY c.id LIMIT {int(limit)}",
        [after_id, today.month, today.year],
    )
    if not rows:
        return 0, 0
    settings = get_crm_settings()
    zone = clock.clinic_zone()
    valid_until = datetime.combine(today + timedelta(days=settings.birthday_voucher_valid_days), time(0), tzinfo=zone)
    given = 0
    now = clock.now()
    for row in rows:
        customer_id = int(row["id"])
        await BirthdayGift.bulk_create([BirthdayGift(customer_id=customer_id, year=today.year, created_at=now)],
                                       ignore_conflicts=True, using_db=conn)
        gift = await BirthdayGift.filter(customer_id=customer_id, year=today.year).using_db(
            conn).select_for_update().first()
        if gift.voucher_id is not None:
            continue
        gift.voucher_id = await partners.issue_birthday_voucher(
            conn, customer_id=customer_id, year=today.year, title=settings.birthday_voucher_title,
            valid_until=valid_until,
        )
        await gift.save(using_db=conn, update_fields=["voucher_id"])
        given += 1
    return int(rows[-1]["id"]), given


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
