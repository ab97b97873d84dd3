"""The group-buy room's part of a customer's data export and erasure (PIPL, see kernel/privacy.py)."""

from __future__ import annotations

from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from campaigns.groupbuy.models import CampaignEntry, CampaignQuota, Group
from kernel.privacy import rows_of

TABLES = [
    (CampaignEntry, "customer_id", "entries"),
    (Group, "leader_id", "groups_led"),
    (CampaignQuota, "customer_id", "quotas"),
]


async def export(conn: BaseDBAsyncClient, customer_id: int) -> dict[str, Any]:
    return {
        "entries": await rows_of(
            CampaignEntry.filter(customer_id=customer_id).using_db(conn),
            "campaign_id", "group_id", "order_id", "role", "quantity", "unit_price_fen", "status", "created_at",
            "paid_at",
        ),
        "groups_led": await rows_of(
            Group.filter(leader_id=customer_id).using_db(conn),
            "id", "campaign_id", "size", "seats_taken", "paid_count", "status", "deadline", "created_at", "settled_at",
        ),
        "quotas": await rows_of(CampaignQuota.filter(customer_id=customer_id).using_db(conn), "campaign_id", "units"),
    }


async def erase(conn: BaseDBAsyncClient, customer_id: int) -> None:
    """Nothing to remove: entries and groups hold ids, amounts and states (the group's other members
    depend on them); once the customer row is anonymised they belong to nobody identifiable."""
    return None
