"""Campaign lifecycle over time: start when due, end (settle every group, close unpaid orders), tier refunds.

Functions take the caller's connection and never commit; campaigns/groupbuy/tasks.py drives them.
"""

from __future__ import annotations

import structlog
from tortoise.backends.base.client import BaseDBAsyncClient

from campaigns.groupbuy import service as campaigns
from campaigns.groupbuy.models import Campaign, CampaignEntry, CampaignSku, CampaignStatus, EntryStatus, Group
from campaigns.groupbuy.groups import SETTLEABLE
from orders import service as orders
from kernel import clock

log = structlog.get_logger(__name__)


async def start_due_campaigns(conn: BaseDBAsyncClient) -> int:
    now = clock.now()
    return await Campaign.filter(status=CampaignStatus.scheduled, starts_at__lte=now, ends_at__gt=now).using_db(
        conn).update(status=CampaignStatus.live, updated_at=now)


async def mark_ended(conn: BaseDBAsyncClient, campaign_id: int) -> bool:
    now = clock.now()
    return bool(await Campaign.filter(
        id=campaign_id, status__in=(CampaignStatus.scheduled, CampaignStatus.live), ends_at__lte=now
    ).using_db(conn).update(status=CampaignStatus.ended, ended_at=now, updated_at=now))


async def unsettled_group_ids(conn: BaseDBAsyncClient, campaign_id: int) -> list[int]:
    return await Group.filter(campaign_id=campaign_id, status__in=SETTLEABLE).using_db(conn).values_list(
        "id", flat=True)


async def held_order_ids(conn: BaseDBAsyncClient, campaign_id: int) -> list[int]:
    """Orders whose entries still hold stock: unpaid, or paid but not yet counted by their job."""
    return await CampaignEntry.filter(campaign_id=campaign_id, status=EntryStatus.held).using_db(conn).values_list(
        "order_id", flat=True)


async def settle_tier_price(conn: BaseDBAsyncClient, sku_id: int) -> int:
    """Fix the SKU's final price from its paid units and refund every buyer the difference, once.

    Each buyer paid the price current when they ordered; the refund is (paid unit price - final
    price) x quantity, in fen. Returns how many refunds were requested.
    """
    sku = await CampaignSku.filter(id=sku_id).using_db(conn).select_for_update().first()
    if sku is None or sku.final_price_fen is not None:
        return 0
    final = campaigns.final_price_fen(sku)
    fixed = await CampaignSku.filter(id=sku_id, final_price_fen=None).using_db(conn).update(final_price_fen=final)
    if not fixed:
        return 0
    refunds = 0
    entries = await CampaignEntry.filter(
        sku_id=sku_id, status__in=(EntryStatus.paid, EntryStatus.fulfilled), unit_price_fen__gt=final
    ).using_db(conn).order_by("id")
    for entry in entries:
        order = await orders.get_order(conn, entry.order_id)
        await orders.request_refund(
            conn, order, amount_fen=(entry.unit_price_fen - final) * entry.quantity, reason="tier_price")
        refunds += 1
    log.info("groupbuy.tier_price_settled", sku_id=sku_id, final_price_fen=final, refunds=refunds)
    return refunds


async def mark_settled(conn: BaseDBAsyncClient, campaign_id: int) -> bool:
    return bool(await Campaign.filter(id=campaign_id, status=CampaignStatus.ended, settled_at=None).using_db(
        conn).update(settled_at=clock.now()))
