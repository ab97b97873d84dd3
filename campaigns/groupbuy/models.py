"""Tortoise models of group buys: campaigns and their SKUs, groups (团), entries (a seat or a purchase), quotas.

Rows written on the hot path (entries, groups) refer to SKUs and groups by plain ids: a foreign key
would take a shared lock on the hot SKU or group row before the conditional update takes the
exclusive one, and two joiners upgrading at once deadlock.
"""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class CampaignKind(StrEnum):
    category = "category"  # 品类团购: buy at the group price, optionally tiered
    bestie_card = "bestie_card"  # 闺蜜卡: a leader opens a group of N, friends join and pay in time


class CampaignStatus(StrEnum):
    draft = "draft"
    scheduled = "scheduled"
    live = "live"
    ended = "ended"
    cancelled = "cancelled"


class Campaign(Model):
    """A time-boxed group-buy offer configured by campaign staff."""

    id = fields.BigIntField(primary_key=True)
    kind = fields.CharEnumField(CampaignKind, max_length=16)
    title = fields.CharField(max_length=64)
    description = fields.CharField(max_length=500, default="")
    status = fields.CharEnumField(CampaignStatus, max_length=16, default=CampaignStatus.draft)
    starts_at = fields.DatetimeField()
    ends_at = fields.DatetimeField()
    group_size = fields.IntField(default=1)
    time_limit_minutes = fields.IntField(default=0)
    per_customer_limit = fields.IntField(default=1)
    new_customers_only = fields.BooleanField(default=False)
    # 虚拟成团: at the deadline a group with at least this many paid members succeeds anyway.
    virtual_min_paid = fields.IntField(null=True)
    leader_bonus_points = fields.IntField(default=0)
    voucher_valid_days = fields.IntField(default=90)
    branch_ids = fields.JSONField(null=True)
    created_by = fields.BigIntField(null=True)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()
    # Set once by the end job: every group settled, every unpaid order closed, tier refunds requested.
    ended_at = fields.DatetimeField(null=True)
    settled_at = fields.DatetimeField(null=True)

    class Meta:
        table = "gb_campaign"
        indexes = (("status", "ends_at"),)


class CampaignSku(Model):
    """What a campaign sells: a service at a group price, with its stock and optional tier prices (阶梯价)."""

    id = fields.BigIntField(primary_key=True)
    campaign = fields.ForeignKeyField("campaigns.Campaign", related_name="skus", on_delete=fields.RESTRICT)
    title = fields.CharField(max_length=64)
    service_id = fields.BigIntField(null=True)
    original_price_fen = fields.IntField()
    group_price_fen = fields.IntField()
    stock_total = fields.IntField()
    stock_left = fields.IntField()
    # Units paid and not refunded: what the tier price is computed from.
    sold_units = fields.IntField(default=0)
    # [{"min_units": 10, "price_fen": 9000}, ...], min_units rising, price falling.
    tiers = fields.JSONField(default=list)
    final_price_fen = fields.IntField(null=True)
    position = fields.IntField(default=0)

    class Meta:
        table = "gb_sku"


class GroupStatus(StrEnum):
    pending = "pending"  # the leader has not paid yet: nobody can join
    open = "open"
    succeeded = "succeeded"
    failed = "failed"


class Group(Model):
    """One bestie-card group (团): opened by a leader, joined by friends until full or the deadline."""

    id = fields.BigIntField(primary_key=True)
    campaign = fields.ForeignKeyField("campaigns.Campaign", related_name="groups", on_delete=fields.RESTRICT)
    sku_id = fields.BigIntField()
    leader_id = fields.BigIntField()
    size = fields.IntField()
    seats_taken = fields.IntField(default=1)
    paid_count = fields.IntField(default=0)
    status = fields.CharEnumField(GroupStatus, max_length=16, default=GroupStatus.pending)
    deadline = fields.DatetimeField()
    # 1 while the group is pending or open, NULL after: with the unique key below a leader has at
    # most one unsettled group per campaign (NULLs never collide).
    open_slot = fields.SmallIntField(null=True, default=1)
    virtual = fields.BooleanField(default=False)
    share_views = fields.IntField(default=0)
    created_at = fields.DatetimeField()
    settled_at = fields.DatetimeField(null=True)

    class Meta:
        table = "gb_group"
        unique_together = (("campaign_id", "leader_id", "open_slot"),)
        indexes = (("status", "deadline"),)


class EntryRole(StrEnum):
    leader = "leader"
    member = "member"
    buyer = "buyer"  # a category purchase


class EntryStatus(StrEnum):
    held = "held"  # a seat and stock held while the order is unpaid
    paid = "paid"
    fulfilled = "fulfilled"  # vouchers issued
    released = "released"  # the order closed unpaid: seat and stock given back
    refunding = "refunding"
    refunded = "refunded"


class CampaignEntry(Model):
    """A customer's place in a campaign: a seat in a bestie group or a category purchase, sold by one order."""

    id = fields.BigIntField(primary_key=True)
    campaign_id = fields.BigIntField(db_index=True)
    sku_id = fields.BigIntField()
    group_id = fields.BigIntField(null=True, db_index=True)
    customer_id = fields.BigIntField(db_index=True)
    order_id = fields.BigIntField(unique=True)
    role = fields.CharEnumField(EntryRole, max_length=16)
    quantity = fields.IntField(default=1)
    unit_price_fen = fields.IntField()
    status = fields.CharEnumField(EntryStatus, max_length=16, default=EntryStatus.held)
    # 1 while the entry holds or owns a seat, NULL once released: one live seat per customer per group.
    active_slot = fields.SmallIntField(null=True, default=1)
    created_at = fields.DatetimeField()
    paid_at = fields.DatetimeField(null=True)

    class Meta:
        table = "gb_entry"
        unique_together = (("group_id", "customer_id", "active_slot"),)
        indexes = (("campaign_id", "status"),)


class CampaignQuota(Model):
    """Units a customer holds or owns in a campaign, kept under the per-customer limit by a conditional update."""

    id = fields.BigIntField(primary_key=True)
    campaign_id = fields.BigIntField()
    customer_id = fields.BigIntField()
    units = fields.IntField(default=0)

    class Meta:
        table = "gb_quota"
        unique_together = (("campaign_id", "customer_id"),)
