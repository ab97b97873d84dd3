"""arq jobs of group buys: each group's deadline (deferred, deterministic job id), campaign end, the sweeper."""

from __future__ import annotations

from typing import Any

import structlog
from arq import Retry, cron, func

from campaigns.groupbuy import ending, groups
from campaigns.groupbuy.models import Campaign, CampaignSku, CampaignStatus, Group
from orders import payments
from orders.gateway import GatewayUnavailable, gateway_from
from orders.tasks import retry_delay
from kernel import clock
from kernel.jobs import run_job_transaction
from kernel.settings import get_settings

log = structlog.get_logger(__name__)

SWEEP_BATCH = 200


def close_job_id(group_id: int) -> str:
    # One deadline job per group, whoever schedules it and however often.
    return f"campaigns.close_group:{group_id}"


async def schedule_group_close(ctx: dict[str, Any], group_id: int) -> str:
    """Put the group's deadline job on the queue, deferred to the deadline, under its deterministic id."""
    group = await Group.get_or_none(id=group_id)
    if group is None or group.status not in groups.SETTLEABLE:
        return "settled"
    job = await ctx["redis"].enqueue_job(
        "campaigns.close_group", group_id, _job_id=close_job_id(group_id), _defer_until=group.deadline,
        _queue_name=get_settings().redis.queue_name,
    )
    return "scheduled" if job is not None else "already_scheduled"


async def close_group(ctx: dict[str, Any], group_id: int) -> str:
    """At the deadline: virtual completion or failure (refunds), unless the group filled first."""
    # A deadlock past the quick retries goes back to arq rather than waiting for the sweeper's next minute.
    result = await run_job_transaction(ctx, groups.settle_group, group_id)
    if result == "not_due":
        group = await Group.get(id=group_id)
        raise Retry(defer=max(1.0, (group.deadline - clock.now()).total_seconds()))
    return result


async def end_campaign(ctx: dict[str, Any], campaign_id: int) -> str:
    """After the end: settle every group, close unpaid orders, then fix tier prices and refund differences."""
    campaign = await Campaign.get_or_none(id=campaign_id)
    if campaign is None or campaign.settled_at is not None:
        return "settled"
    if campaign.status in (CampaignStatus.scheduled, CampaignStatus.live) and campaign.ends_at > clock.now():
        return "not_due"
    if campaign.status in (CampaignStatus.draft, CampaignStatus.cancelled):
        return "not_running"
    await run_job_transaction(ctx, ending.mark_ended, campaign_id)
    for group_id in await run_job_transaction(ctx, ending.unsettled_group_ids, campaign_id):
        await run_job_transaction(ctx, lambda conn, gid=group_id: groups.settle_group(conn, gid, force=True))
    gateway = gateway_from(ctx)
    held = await run_job_transaction(ctx, ending.held_order_ids, campaign_id)
    for order_id in held:
        try:
            await payments.close_or_confirm(gateway, order_id, reason="campaign_ended")
        except (payments.TryLater, GatewayUnavailable) as exc:
            log.info("groupbuy.end_waits_for_order", order_id=order_id, reason=str(exc))
    still_held = await run_job_transaction(ctx, ending.held_order_ids, campaign_id)
    if still_held:
        # Unpaid orders whose window is still open, or payments whose job has not run yet.
        raise Retry(defer=retry_delay(ctx))
    for sku_id in await CampaignSku.filter(campaign_id=campaign_id).values_list("id", flat=True):
        await run_job_transaction(ctx, ending.settle_tier_price, sku_id)
    await run_job_transaction(ctx, ending.mark_settled, campaign_id)
    log.info("groupbuy.campaign_settled", campaign_id=campaign_id)
    return "settled"


async def sweep(ctx: dict[str, Any]) -> dict[str, int]:
    """Safety net every minute: start due campaigns, settle overdue groups, end due campaigns."""
    now = clock.now()
    counts = {"started": 0, "groups": 0, "campaigns": 0}
    counts["started"] = await run_job_transaction(ctx, ending.start_due_campaigns)
    overdue = await Group.filter(status__in=groups.SETTLEABLE, deadline__lte=now).order_by("deadline").limit(
        SWEEP_BATCH).values_list("id", flat=True)
    for group_id in overdue:
        result = await run_job_transaction(ctx, groups.settle_group, group_id)
        counts["groups"] += result in ("succeeded", "failed")
    due = await Campaign.filter(
        status__in=(CampaignStatus.scheduled, CampaignStatus.live, CampaignStatus.ended), ends_at__lte=now,
        settled_at=None,
    ).limit(SWEEP_BATCH).values_list("id", flat=True)
    for campaign_id in due:
        try:
            counts["campaigns"] += await end_campaign(ctx, campaign_id) == "settled"
        except Retry:
            log.info("groupbuy.sweep_end_deferred", campaign_id=campaign_id)
    if any(counts.values()):
        log.info("groupbuy.swept", **counts)
    return counts


FUNCTIONS = [
    func(schedule_group_close, name="campaigns.schedule_group_close", timeout=30, max_tries=5),
    func(close_group, name="campaigns.close_group", timeout=120, max_tries=20),
    func(end_campaign, name="campaigns.end_campaign", timeout=280, max_tries=30),
    func(sweep, name="campaigns.sweep", timeout=280, max_tries=1),
]
CRON_JOBS = [cron(sweep, name="cron:campaigns.sweep", second={37}, run_at_startup=False, timeout=280, max_tries=1)]
