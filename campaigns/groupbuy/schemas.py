"""Request and response structs of the campaign (admin) and group-buy (customer) routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from campaigns.groupbuy.models import (
    Campaign, CampaignKind, CampaignSku, CampaignStatus, EntryRole, EntryStatus, GroupStatus,
)
from kernel.schemas import Id, Page

Title = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Fen = Annotated[int, msgspec.Meta(ge=1, le=100_000_000)]
Count = Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]
EditVersion = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{32}$", description="The campaign's `version` as read")]


class Tier(msgspec.Struct, forbid_unknown_fields=True):
    min_units: Annotated[int, msgspec.Meta(ge=1)]
    price_fen: Fen


class SkuCreate(msgspec.Struct, forbid_unknown_fields=True):
    title: Title
    original_price_fen: Fen
    group_price_fen: Fen
    stock: Count
    service_id: Id | None = None
    tiers: list[Tier] = []


class SkuUpdate(msgspec.Struct, forbid_unknown_fields=True):
    title: Title | None = None
    original_price_fen: Fen | None = None
    group_price_fen: Fen | None = None
    stock: Count | None = None
    tiers: list[Tier] | None = None


class SkuEdit(SkuUpdate, forbid_unknown_fields=True, kw_only=True):
    """One of the campaign's items, changed with the campaign in one request (`CampaignUpdate.skus`)."""

    id: Id


class CampaignCreate(msgspec.Struct, forbid_unknown_fields=True):
    kind: CampaignKind
    title: Title
    starts_at: datetime
    ends_at: datetime
    skus: list[SkuCreate]
    description: Annotated[str, msgspec.Meta(max_length=500)] = ""
    group_size: Annotated[int, msgspec.Meta(ge=1, le=50)] = 1
    time_limit_minutes: Annotated[int, msgspec.Meta(ge=0, le=7 * 24 * 60)] = 0
    per_customer_limit: Annotated[int, msgspec.Meta(ge=1, le=100)] = 1
    new_customers_only: bool = False
    virtual_min_paid: Annotated[int, msgspec.Meta(ge=1)] | None = None
    leader_bonus_points: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = 0
    voucher_valid_days: Annotated[int, msgspec.Meta(ge=1, le=730)] = 90
    branch_ids: list[Id] | None = None


class CampaignUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Every field optional; a live campaign may change only its texts, end, limit and stock. A field sent with
    the value it has (an instant in any offset, to the second) is no change, so a whole body can be sent back."""

    title: Title | None = None
    description: Annotated[str, msgspec.Meta(max_length=500)] | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    group_size: Annotated[int, msgspec.Meta(ge=1, le=50)] | None = None
    time_limit_minutes: Annotated[int, msgspec.Meta(ge=0, le=7 * 24 * 60)] | None = None
    per_customer_limit: Annotated[int, msgspec.Meta(ge=1, le=100)] | None = None
    new_customers_only: bool | None = None
    virtual_min_paid: Annotated[int, msgspec.Meta(ge=0)] | None = None  # 0 turns virtual completion off
    leader_bonus_points: Annotated[int, msgspec.Meta(ge=0, le=100_000)] | None = None
    voucher_valid_days: Annotated[int, msgspec.Meta(ge=1, le=730)] | None = None
    branch_ids: list[Id] | None = None
    # Items changed in the same transaction as the campaign: a refused item leaves the campaign as it was.
    skus: list[SkuEdit] | None = None
    # The `version` the campaign was read with (GET answers it): a save from a copy someone changed since is
    # refused with 409 `edited_meanwhile` and changes nothing. Not sent (older clients), the body is applied
    # as before: last save wins.
    version: EditVersion | None = None


class SkuOut(msgspec.Struct):
    id: int
    title: str
    service_id: int | None
    original_price_fen: int
    group_price_fen: int
    current_price_fen: int
    stock_total: int
    stock_left: int
    sold_units: int
    tiers: list[Tier]
    final_price_fen: int | None


class CampaignOut(msgspec.Struct):
    id: int
    kind: CampaignKind
    title: str
    description: str
    status: CampaignStatus
    starts_at: datetime
    ends_at: datetime
    group_size: int
    time_limit_minutes: int
    per_customer_limit: int
    new_customers_only: bool
    virtual_min_paid: int | None
    leader_bonus_points: int
    voucher_valid_days: int
    branch_ids: list[int] | None
    skus: list[SkuOut]
    ended_at: datetime | None
    settled_at: datetime | None
    # What staff edit, as one value: send it back as `CampaignUpdate.version` (it does not move when customers
    # take stock).
    version: str
    # What an edit would be refused for changing now (a running campaign's start, group rules, prices...): the
    # campaign's own fields, and those of every item. Empty for a draft or a campaign not started yet.
    locked_fields: list[str]
    locked_item_fields: list[str]


class CampaignPage(Page):
    items: list[CampaignOut]


class PublicSku(msgspec.Struct):
    id: int
    title: str
    original_price_fen: int
    group_price_fen: int
    current_price_fen: int
    stock_left: int
    tiers: list[Tier]


class PublicCampaign(msgspec.Struct):
    id: int
    kind: CampaignKind
    title: str
    description: str
    starts_at: datetime
    ends_at: datetime
    group_size: int
    time_limit_minutes: int
    new_customers_only: bool
    skus: list[PublicSku]


class GroupOpen(msgspec.Struct, forbid_unknown_fields=True):
    campaign_id: int
    sku_id: int


class PurchaseCreate(msgspec.Struct, forbid_unknown_fields=True):
    sku_id: int
    quantity: Annotated[int, msgspec.Meta(ge=1, le=100)] = 1


class Seat(msgspec.Struct):
    """What opening, joining or buying created: the order to pay before `pay_by`."""

    entry_id: int
    order_id: int
    total_fen: int
    pay_by: datetime
    group_id: int | None = None


class Member(msgspec.Struct):
    nickname: str
    avatar_url: str
    is_leader: bool
    paid: bool


class GroupView(msgspec.Struct):
    """The shareable view: what a friend sees before joining (avatars and nicknames only)."""

    id: int
    campaign_id: int
    campaign_title: str
    sku_title: str
    group_price_fen: int
    original_price_fen: int
    status: GroupStatus
    size: int
    seats_left: int
    paid_count: int
    deadline: datetime
    seconds_left: int
    members: list[Member]


class CampaignStats(msgspec.Struct):
    campaign_id: int
    groups_opened: int
    groups_open: int
    groups_succeeded: int
    groups_failed: int
    units_sold: int
    gmv_fen: int
    refunds: int
    refunded_fen: int
    share_views: int
    joins: int
    # Joins per thousand views of shared groups (an integer: no floats in reports).
    share_conversion_permille: int
    # Of the succeeded groups, those completed virtually (paid seats reached virtual_min_paid at the deadline).
    groups_virtual: int = 0
    # Seats taken (paid or held) in the groups opened.
    seats_taken: int = 0


class GroupMember(msgspec.Struct):
    """One seat of a group, for campaign staff (the phone masked)."""

    customer_id: int
    nickname: str
    phone: str | None
    role: EntryRole
    status: EntryStatus
    order_id: int
    paid_at: datetime | None


class StaffGroup(msgspec.Struct):
    id: int
    sku_id: int
    sku_title: str
    status: GroupStatus
    virtual: bool
    size: int
    seats_taken: int
    paid_count: int
    deadline: datetime
    created_at: datetime
    settled_at: datetime | None
    members: list[GroupMember]


class StaffGroupPage(Page):
    items: list[StaffGroup]


def tiers_of(sku: CampaignSku) -> list[Tier]:
    return [Tier(min_units=t["min_units"], price_fen=t["price_fen"]) for t in (sku.tiers or [])]


def sku_out(sku: CampaignSku, current_price_fen: int) -> SkuOut:
    return SkuOut(
        id=sku.id, title=sku.title, service_id=sku.service_id, original_price_fen=sku.original_price_fen,
        group_price_fen=sku.group_price_fen, current_price_fen=current_price_fen, stock_total=sku.stock_total,
        stock_left=sku.stock_left, sold_units=sku.sold_units, tiers=tiers_of(sku), final_price_fen=sku.final_price_fen,
    )


def campaign_out(c: Campaign, skus: list[SkuOut], *, version: str, locked_fields: list[str],
                 locked_item_fields: list[str]) -> CampaignOut:
    return CampaignOut(
        id=c.id, kind=c.kind, title=c.title, description=c.description, status=c.status, starts_at=c.starts_at,
        ends_at=c.ends_at, group_size=c.group_size, time_limit_minutes=c.time_limit_minutes,
        per_customer_limit=c.per_customer_limit, new_customers_only=c.new_customers_only,
        virtual_min_paid=c.virtual_min_paid, leader_bonus_points=c.leader_bonus_points,
        voucher_valid_days=c.voucher_valid_days, branch_ids=c.branch_ids, skus=skus, ended_at=c.ended_at,
        settled_at=c.settled_at, version=version, locked_fields=locked_fields, locked_item_fields=locked_item_fields,
    )
