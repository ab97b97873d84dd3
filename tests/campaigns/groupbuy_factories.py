"""Factories of the group-buy tests: live campaigns, and paying an order the way a confirmed payment does."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from campaigns.groupbuy import service
from campaigns.groupbuy.models import Campaign, CampaignKind, CampaignSku, CampaignStatus
from campaigns.groupbuy.schemas import CampaignCreate, SkuCreate, Tier
from orders import service as orders
from orders.gateway import TradeState, default_gateway
from orders.models import NotificationOutcome, Order
from kernel import clock
from kernel.db import transaction


async def make_campaign(kind: CampaignKind = CampaignKind.bestie_card, *, stock: int = 100,
                        group_price_fen: int = 9_900, tiers: list[tuple[int, int]] | None = None,
                        live: bool = True, **overrides: Any) -> tuple[Campaign, CampaignSku]:
    now = clock.now()
    fields: dict[str, Any] = dict(
        kind=kind, title="Test " + secrets.token_hex(3), starts_at=now - timedelta(minutes=5),
        ends_at=now + timedelta(days=7),
        skus=[SkuCreate(title="小气泡", original_price_fen=group_price_fen * 3, group_price_fen=group_price_fen,
                        stock=stock, tiers=[Tier(min_units=u, price_fen=p) for u, p in (tiers or [])])],
    )
    if kind == CampaignKind.bestie_card:
        fields.update(group_size=3, time_limit_minutes=60)
    fields.update(overrides)
    async with transaction() as conn:
        campaign = await service.create_campaign(conn, CampaignCreate(**fields), staff_id=1)
        if live:
            await Campaign.filter(id=campaign.id).using_db(conn).update(status=CampaignStatus.live)
        sku = (await service.skus_of(conn, campaign.id))[0]
    return await Campaign.get(id=campaign.id), sku


async def pay(order_or_id: Order | int, gateway=None) -> NotificationOutcome:
    """Apply a confirmed payment for the order and run its paid-order side effects (as the job would)."""
    gateway = gateway or default_gateway()
    order = await Order.get(id=order_or_id if isinstance(order_or_id, int) else order_or_id.id)
    trade = TradeState(out_trade_no=order.out_trade_no, trade_state="SUCCESS", mchid=gateway.mchid,
                       appid=gateway.appid, transaction_id="4200" + secrets.token_hex(12), total_fen=order.total_fen)
    async with transaction() as conn:
        outcome = await orders.apply_payment(conn, trade, expected_mchid=gateway.mchid, expected_appid=gateway.appid,
                                             source="test")
    async with transaction() as conn:
        await orders.handle_paid_order(conn, order.id)
    return outcome
