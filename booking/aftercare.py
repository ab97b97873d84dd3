"""Around the visit: reminders, automatic no-shows, follow-up tasks (回访) and the satisfaction survey.

A reminder is claimed with a unique key in one short transaction, sent outside any transaction,
then marked; a second run finds the key and sends nothing (at most once: a crash between claim
and send loses that reminder rather than sending it twice).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F

from booking.catalogue import zone_of
from booking.errors import FollowUpAlreadyDone, FollowUpNotFound, SurveyAlreadyAnswered, SurveyNotOpen
from booking.models import (
    Booking,
    BookingStatus,
    Branch,
    Department,
    FollowUpStatus,
    FollowUpTask,
    Notification,
    NotificationStatus,
    Service,
    Survey,
)
from booking.bookings import get_customer_booking
from booking.settings import get_booking_settings
from kernel import clock
from kernel.errors import ValidationFailed
from kernel.identity.models import Customer

MAX_REMINDER_ATTEMPTS = 3
# WeChat limits a "thing" field of a subscribe message to 20 characters.
_THING = 20


@dataclass(frozen=True)
class ReminderMessage:
    notification_id: int
    openid: str
    template_id: str
    data: dict[str, str]
    page: str


def reminder_key(booking: Booking) -> str:
    # The start is part of the key: a booking moved to another day is reminded again for that day.
    return f"reminder:{booking.id}:{int(booking.starts_at.timestamp())}"


async def due_reminder_ids(conn: BaseDBAsyncClient) -> list[int]:
    now = clock.now()
    lead = timedelta(hours=get_booking_settings().reminder_lead_hours)
    return await Booking.filter(
        status=BookingStatus.booked, remind=True, starts_at__gt=now, starts_at__lte=now + lead
    ).using_db(conn).order_by("starts_at").values_list("id", flat=True)


async def claim_reminder(conn: BaseDBAsyncClient, booking_id: int) -> ReminderMessage | None:
    """Reserve the reminder of a booking; None when it is not due, or already sent or being sent."""
    booking = await Booking.get_or_none(id=booking_id, using_db=conn)
    if booking is None or booking.status != BookingStatus.booked or not booking.remind:
        return None
    now = clock.now()
    if not now < booking.starts_at <= now + timedelta(hours=get_booking_settings().reminder_lead_hours):
        return None
    key = reminder_key(booking)
    notification = await Notification.get_or_none(key=key, using_db=conn)
    if notification is None:
        try:
            notification = await Notification.create(
                key=key, booking_id=booking.id, kind="reminder", created_at=now, using_db=conn
            )
        except IntegrityError:
            return None  # another worker claimed it a moment ago
    else:
        # Only a failed attempt may be tried again, and only a few times.
        retried = await Notification.filter(
            id=notification.id, status=NotificationStatus.failed, attempts__lt=MAX_REMINDER_ATTEMPTS
        ).using_db(conn).update(status=NotificationStatus.sending, attempts=F("attempts") + 1)
        if retried != 1:
            return None
    customer = await Customer.get(id=booking.customer_id, using_db=conn)
    branch = await Branch.get(id=booking.branch_id, using_db=conn)
    what = None
    if booking.service_id is not None:
        what = (await Service.get(id=booking.service_id, using_db=conn)).name
    if what is None:
        what = (await Department.get(id=booking.department_id, using_db=conn)).name
    local = booking.starts_at.astimezone(zone_of(branch))
    settings = get_booking_settings()
    return ReminderMessage(
        notification_id=notification.id,
        openid=customer.openid,
        template_id=settings.reminder_template_id,
        data={
            "thing1": what[:_THING],
            "time2": local.strftime("%Y-%m-%d %H:%M"),
            "thing3": branch.name[:_THING],
            "thing4": "请提前10分钟到院，如需改期请在小程序操作"[:_THING],
        },
        page=f"pages/booking/detail?id={booking.id}",
    )


async def mark_reminder(conn: BaseDBAsyncClient, notification_id: int, *, error: str | None = None) -> None:
    if error is None:
        await Notification.filter(id=notification_id, status=NotificationStatus.sending).using_db(conn).update(
            status=NotificationStatus.sent, sent_at=clock.now()
        )
    else:
        await Notification.filter(id=notification_id, status=NotificationStatus.sending).using_db(conn).update(
            status=NotificationStatus.failed, last_error=error[:250]
        )


async def mark_no_shows(conn: BaseDBAsyncClient) -> int:
    """Bookings never marked arrived once their local day is over become no-shows (conditional)."""
    now = clock.now()
    changed = 0
    for branch in await Branch.all().using_db(conn):
        today = clock.local_today(zone_of(branch))
        changed += await Booking.filter(
            branch_id=branch.id, status=BookingStatus.booked, local_date__lt=today
        ).using_db(conn).update(status=BookingStatus.no_show, no_show_at=now)
    return changed


async def create_follow_ups(conn: BaseDBAsyncClient, booking_id: int) -> int:
    """Follow-up tasks at the configured days after completion; returns how many are new.

    The unique (booking, days_after) key makes a repeated job create nothing twice.
    """
    booking = await Booking.get_or_none(id=booking_id, using_db=conn)
    if booking is None or booking.status != BookingStatus.completed or booking.completed_at is None:
        return 0
    branch = await Branch.get(id=booking.branch_id, using_db=conn)
    visit_day = booking.completed_at.astimezone(zone_of(branch)).date()
    existing = set(await FollowUpTask.filter(booking_id=booking.id, kind="aftercare").using_db(conn).values_list("days_after", flat=True))
    days = [d for d in get_booking_settings().follow_up_days if d not in existing]
    if not days:
        return 0
    before = len(existing)
    now = clock.now()
    # ignore_conflicts: a second run racing this one hits the unique key and inserts nothing.
    await FollowUpTask.bulk_create(
        [
            FollowUpTask(
                booking_id=booking.id, customer_id=booking.customer_id, branch_id=booking.branch_id,
                days_after=d, due_date=visit_day + timedelta(days=d), created_at=now,
            )
            for d in days
        ],
        ignore_conflicts=True,
        using_db=conn,
    )
    return await FollowUpTask.filter(booking_id=booking.id, kind="aftercare").using_db(conn).count() - before


async def add_consultation_follow_up(
    conn: BaseDBAsyncClient, booking_id: int, *, days_after: int, note: str
) -> FollowUpTask | None:
    """A 咨询回访 task for a consultation visit that did not convert (the CRM room decides which).

    Kind "consultation", so it never collides with the visit's aftercare calls; unique per
    (booking, kind, days_after), so asking twice returns the first. None when the booking is unknown.
    """
    booking = await Booking.get_or_none(id=booking_id, using_db=conn)
    if booking is None:
        return None
    branch = await Branch.get(id=booking.branch_id, using_db=conn)
    await FollowUpTask.bulk_create(
        [
            FollowUpTask(
                booking_id=booking.id, customer_id=booking.customer_id, branch_id=booking.branch_id,
                kind="consultation", days_after=days_after,
                due_date=clock.now().astimezone(zone_of(branch)).date(), note=note[:1000], created_at=clock.now(),
            )
        ],
        ignore_conflicts=True,
        using_db=conn,
    )
    return await FollowUpTask.get_or_none(
        booking_id=booking.id, kind="consultation", days_after=days_after, using_db=conn
    )


async def follow_ups(
    conn: BaseDBAsyncClient, *, due: str, branch_id: int | None = None, status: FollowUpStatus | None = None,
    limit: int = 100, offset: int = 0,
) -> tuple[int, list[FollowUpTask]]:
    """`due`: "today" (due today or overdue), "overdue", or a date (YYYY-MM-DD)."""
    today = clock.local_today()
    query = FollowUpTask.all().using_db(conn)
    if due == "today":
        query = query.filter(due_date__lte=today)
        status = status or FollowUpStatus.open
    elif due == "overdue":
        query = query.filter(due_date__lt=today)
        status = status or FollowUpStatus.open
    else:
        try:
            day = date.fromisoformat(due)
        except ValueError as exc:
            raise ValidationFailed("due is today, overdue or a date (YYYY-MM-DD).", field="due") from exc
        query = query.filter(due_date=day)
    if status is not None:
        query = query.filter(status=status)
    if branch_id is not None:
        query = query.filter(branch_id=branch_id)
    return await query.count(), await query.order_by("due_date", "id").offset(offset).limit(limit)


async def complete_follow_up(conn: BaseDBAsyncClient, follow_up_id: int, *, staff_id: int, note: str) -> FollowUpTask:
    done = await FollowUpTask.filter(id=follow_up_id, status=FollowUpStatus.open).using_db(conn).update(
        status=FollowUpStatus.done, note=note, done_by=staff_id, done_at=clock.now()
    )
    task = await FollowUpTask.get_or_none(id=follow_up_id, using_db=conn)
    if task is None:
        raise FollowUpNotFound()
    if done != 1:
        raise FollowUpAlreadyDone()
    return task


async def answer_survey(
    conn: BaseDBAsyncClient, *, customer_id: int, booking_id: int, score: int, comment: str = ""
) -> Survey:
    booking = await get_customer_booking(conn, customer_id, booking_id)
    if booking.status != BookingStatus.completed:
        raise SurveyNotOpen(status=booking.status.value)
    if await Survey.filter(booking_id=booking.id).using_db(conn).exists():
        raise SurveyAlreadyAnswered()
    try:
        return await Survey.create(
            booking_id=booking.id, customer_id=customer_id, score=score, comment=comment.strip(),
            created_at=clock.now(), using_db=conn,
        )
    except IntegrityError as exc:  # two answers raced; the unique booking key kept one
        raise SurveyAlreadyAnswered() from exc
