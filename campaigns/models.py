"""Tortoise models of the campaigns app: group buys and bestie cards (campaigns/groupbuy)."""

from campaigns.groupbuy.models import (  # noqa: F401  (re-exported for Tortoise's model discovery)
    Campaign,
    CampaignEntry,
    CampaignKind,
    CampaignQuota,
    CampaignSku,
    CampaignStatus,
    EntryRole,
    EntryStatus,
    Group,
    GroupStatus,
)
