"""Tortoise models of the campaigns app: orders and payments (campaigns/orders), group buys (campaigns/groupbuy)."""

from campaigns.orders.models import (  # noqa: F401  (re-exported for Tortoise's model discovery)
    NotificationOutcome,
    Order,
    OrderLine,
    OrderStatus,
    PaymentEvent,
    Refund,
    RefundStatus,
)
from campaigns.groupbuy.models import (  # noqa: F401,E402
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
