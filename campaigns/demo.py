"""Demo group buys for the embedded stack: one live bestie-card campaign and one live tiered category group buy."""

from __future__ import annotations

from datetime import timedelta

from tortoise.backends.base.client import BaseDBAsyncClient

from campaigns.groupbuy import service
from campaigns.groupbuy.models import Campaign, CampaignKind, CampaignStatus
from campaigns.groupbuy.schemas import CampaignCreate, SkuCreate, Tier
from kernel import clock

BESTIE_TITLE = "闺蜜卡 · 小气泡清洁 3 人团"
CATEGORY_TITLE = "热玛吉全脸 品类团购 (阶梯价)"


async def load(conn: BaseDBAsyncClient) -> None:
    now = clock.now()
    demos = [
        CampaignCreate(
            kind=CampaignKind.bestie_card, title=BESTIE_TITLE,
            description="Open a group, share it with two friends; when all three have paid, everyone gets a voucher.",
            starts_at=now - timedelta(hours=1), ends_at=now + timedelta(days=30), group_size=3,
            time_limit_minutes=24 * 60, per_customer_limit=1, new_customers_only=False, virtual_min_paid=2,
            leader_bonus_points=200,
            skus=[SkuCreate(title="小气泡深层清洁", original_price_fen=29_800, group_price_fen=9_900, stock=300)],
        ),
        CampaignCreate(
            kind=CampaignKind.category, title=CATEGORY_TITLE,
            description="The more sold, the lower the final price; everyone pays the final price in the end.",
            starts_at=now - timedelta(hours=1), ends_at=now + timedelta(days=14), per_customer_limit=2,
            skus=[SkuCreate(title="热玛吉 FLX 全脸 900 发", original_price_fen=1_880_000, group_price_fen=1_280_000,
                            stock=100, tiers=[Tier(min_units=10, price_fen=1_180_000),
                                              Tier(min_units=30, price_fen=1_080_000)])],
        ),
    ]
    for data in demos:
        if await Campaign.filter(title=data.title).using_db(conn).exists():
            continue
        campaign = await service.create_campaign(conn, data, staff_id=0)
        await Campaign.filter(id=campaign.id).using_db(conn).update(status=CampaignStatus.live)
