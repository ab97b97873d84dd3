"""arq jobs of points and the mall: release pending points, expire lots, expiry reminders, tier review, voucher expiry.

Every job reloads rows by id and changes them with conditional updates, so running it twice (arq runs
jobs at least once) changes nothing the second time.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import structlog
from arq import cron, func
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.functions import Sum

from kernel import clock
from kernel.jobs import run_job_transaction
from kernel.identity.models import Customer
from kernel.outbox import enqueue
from points_mall import ledger, mall
from points_mall.models import ExpiryReminder, PointsLot
from points_mall.rules import get_rules
from points_mall.tiers import accounts_with_tier, evaluate_tier

log = structlog.get_logger(__name__)


async def release_pending_points(ctx: dict[str, Any]) -> int:
    """Move held consumption points whose refund window has passed into the ledger."""
    released = 0
    while True:
        due = await run_job_transaction(ctx, ledger.due_pending_ids)
        if not due:
            return released
        for pending_id in due:
            entry = await run_job_transaction(ctx, ledger.release_pending, pending_id)
            released += entry is not None
        if len(due) < 500:
            return released


async def expire_points(ctx: dict[str, Any]) -> dict[str, int]:
    """Expire due lots (one transaction per customer) and queue reminders for points expiring soon."""
    expired_customers = 0
    while True:
        customers = await run_job_transaction(ctx, ledger.customers_with_expired_lots)
        for customer_id in customers:
            entries = await run_job_transaction(ctx, ledger.expire_customer_lots, customer_id)
            expired_customers += bool(entries)
        if len(customers) < 1000:
            break
    reminders = await queue_expiry_reminders(ctx)
    return {"customers_expired": expired_customers, "reminders_queued": reminders}


async def queue_expiry_reminders(ctx: dict[str, Any]) -> int:
    """One reminder per customer and expiry moment within the reminder horizon (30 days by default)."""
    rules = await run_job_transaction(ctx, get_rules)
    if rules.expiry_reminder_days <= 0:
        return 0
    if not rules.expiry_reminder_template_id:
        # A subscribe message names the template the clinic registered with WeChat; there is no id that works
        # for every clinic, and WeChat refuses an unknown one. Until staff set it, no reminder is queued (they
        # are queued on a later run once it is set, for the expiries still ahead).
        log.warning("points_expiry_reminders_off", reason="no expiry_reminder_template_id in the points rules")
        return 0
    now = clock.now()
    horizon = now + timedelta(days=rules.expiry_reminder_days)
    groups = await PointsLot.filter(remaining__gt=0, expires_at__gt=now, expires_at__lte=horizon).annotate(
        points=Sum("remaining")
    ).group_by("customer_id", "expires_at").values_list("customer_id", "expires_at", "points")

    async def remind(conn: BaseDBAsyncClient, customer_id: int, expires_at: datetime, points: int) -> None:
        reminder = await ExpiryReminder.create(
            customer_id=customer_id, expires_at=expires_at, points=points, created_at=now, using_db=conn
        )
        await enqueue(conn, "points.send_expiry_reminder", reminder.id)

    queued = 0
    for customer_id, expires_at, points in groups:
        try:
            await run_job_transaction(ctx, remind, customer_id, expires_at, int(points))
            queued += 1
        except IntegrityError:
            continue  # already reminded about this expiry
    return queued


async def send_expiry_reminder(ctx: dict[str, Any], reminder_id: int) -> bool:
    reminder = await ExpiryReminder.get_or_none(id=reminder_id)
    if reminder is None or reminder.sent_at is not None:
        return False
    customer = await Customer.get_or_none(id=reminder.customer_id, deleted_at=None)  # type: ignore[attr-defined]
    rules = await run_job_transaction(ctx, get_rules)
    if not rules.expiry_reminder_template_id:
        # Queued while a template was set, which staff have since cleared: left unsent (see queue_expiry_reminders).
        log.warning("points_expiry_reminder_not_sent", reminder_id=reminder.id,
                    reason="no expiry_reminder_template_id in the points rules")
        return False
    if customer is not None:
        local = reminder.expires_at.astimezone(clock.clinic_zone()) - timedelta(seconds=1)
        # The WeChat call is outside any transaction; at worst a retry sends the reminder twice.
        await ctx["miniprogram"].send_subscribe_message(
            customer.openid,
            rules.expiry_reminder_template_id,
            {"points": str(reminder.points), "expires_on": local.strftime("%Y-%m-%d")},
            page="pages/points/index",
        )
    await ExpiryReminder.filter(id=reminder.id, sent_at=None).update(sent_at=clock.now())
    return True


async def review_tiers(ctx: dict[str, Any]) -> int:
    """The periodic re-evaluation: the only place a tier goes down."""
    changed = 0
    after = 0
    while True:
        batch = await run_job_transaction(ctx, lambda conn: accounts_with_tier(conn, after_id=after, limit=500))
        for account_id, customer_id in batch:
            change = await run_job_transaction(
                ctx, lambda conn, cid=customer_id: evaluate_tier(conn, cid, allow_down=True, reason="periodic review")
            )
            changed += change is not None
            after = account_id
        if len(batch) < 500:
            return changed


async def expire_vouchers(ctx: dict[str, Any]) -> int:
    """Expire vouchers past their date; mall vouchers return points and stock only if the rules say so."""
    return_points = (await run_job_transaction(ctx, get_rules)).voucher_expiry_returns_points
    expired = 0
    while True:
        due = await run_job_transaction(ctx, mall.due_voucher_ids)
        for voucher_id in due:
            done = await run_job_transaction(
                ctx, lambda conn, vid=voucher_id: mall.expire_voucher(conn, vid, return_points=return_points)
            )
            expired += done
        if len(due) < 500:
            return expired


FUNCTIONS = [
    func(release_pending_points, name="points.release_pending", timeout=600, max_tries=3),
    func(expire_points, name="points.expire", timeout=1800, max_tries=3),
    func(send_expiry_reminder, name="points.send_expiry_reminder", timeout=30, max_tries=5),
    func(review_tiers, name="points.review_tiers", timeout=3600, max_tries=2),
    func(expire_vouchers, name="mall.expire_vouchers", timeout=1800, max_tries=3),
]
CRON_JOBS = [
    cron(release_pending_points, name="cron:points.release_pending", minute=set(range(0, 60, 10)),
         run_at_startup=False),
    # Hourly: lots expire at clinic-local midnight on the 1st, whatever the worker's time zone.
    cron(expire_points, name="cron:points.expire", minute={5}, run_at_startup=False),
    cron(review_tiers, name="cron:points.review_tiers", hour={20}, minute={30}, run_at_startup=False),
    cron(expire_vouchers, name="cron:mall.expire_vouchers", minute={15}, run_at_startup=False),
]
