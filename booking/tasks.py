"""Booking's jobs: reminders (subscribe messages), automatic no-shows, follow-ups, slot publishing.

Each job reloads rows by id and is safe to run twice: reminders go through a unique key, no-shows
and follow-ups are conditional updates / unique keys. The WeChat call happens between two short
transactions, never inside one.
"""

from __future__ import annotations

from typing import Any

import structlog
from arq import cron, func

from booking import service
from booking.models import Schedule
from kernel.jobs import run_job_transaction
from kernel.errors import DomainError

log = structlog.get_logger(__name__)


async def send_reminder(ctx: dict[str, Any], booking_id: int) -> bool:
    """Send one booking's reminder if it is due and not sent yet. Returns whether it was sent."""
    message = await run_job_transaction(ctx, service.claim_reminder, booking_id)
    if message is None:
        return False
    try:
        await ctx["miniprogram"].send_subscribe_message(
            message.openid, message.template_id, message.data, message.page
        )
    except (DomainError, OSError) as exc:
        # Refused subscription, quota, WeChat down: recorded; the next scan tries again (capped).
        error = f"{type(exc).__name__}: {exc}"
        await run_job_transaction(ctx, lambda conn: service.mark_reminder(conn, message.notification_id, error=error))
        log.warning("booking.reminder_failed", booking_id=booking_id, error_type=type(exc).__name__)
        return False
    await run_job_transaction(ctx, service.mark_reminder, message.notification_id)
    return True


async def send_due_reminders(ctx: dict[str, Any]) -> int:
    """The scan: every booking starting within the reminder lead time gets its reminder once."""
    due = await run_job_transaction(ctx, service.due_reminder_ids)
    sent = 0
    for booking_id in due:
        sent += await send_reminder(ctx, booking_id)
    return sent


async def mark_no_shows(ctx: dict[str, Any]) -> int:
    return await run_job_transaction(ctx, service.mark_no_shows)


async def create_follow_ups(ctx: dict[str, Any], booking_id: int) -> int:
    return await run_job_transaction(ctx, service.create_follow_ups, booking_id)


async def publish_schedules(ctx: dict[str, Any]) -> int:
    """Keep every active schedule published up to the horizon (one transaction per schedule)."""
    created = 0
    for schedule in await Schedule.filter(is_active=True).order_by("id"):
        created += await run_job_transaction(ctx, service.publish_horizon, schedule)
    return created


FUNCTIONS = [
    func(send_reminder, name="booking.send_reminder", timeout=30, max_tries=3),
    func(send_due_reminders, name="booking.send_due_reminders", timeout=600, max_tries=2),
    func(mark_no_shows, name="booking.mark_no_shows", timeout=120, max_tries=3),
    func(create_follow_ups, name="booking.create_follow_ups", timeout=60, max_tries=5),
    func(publish_schedules, name="booking.publish_schedules", timeout=600, max_tries=2),
]

CRON_JOBS = [
    cron(send_due_reminders, name="cron:booking.send_due_reminders", minute=set(range(0, 60, 10)),
         run_at_startup=False, timeout=600),
    # Hourly: each branch's day ends at its own local midnight.
    cron(mark_no_shows, name="cron:booking.mark_no_shows", minute={7}, run_at_startup=False, timeout=120),
    cron(publish_schedules, name="cron:booking.publish_schedules", hour={18}, minute={41},
         run_at_startup=True, timeout=600),
]
