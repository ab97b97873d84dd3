"""Request and response structs of the points mall's routes: items, redemptions, vouchers and the front desk's
voucher look-up."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from kernel.schemas import Id, Page
from points_mall.models import MallItem, MallItemKind, MallRedemption, RedemptionStatus, Voucher, VoucherStatus

# Availability windows compare with aware instants: a datetime without an offset is refused, not guessed.
Instant = Annotated[datetime, msgspec.Meta(tz=True)]

Title = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Description = Annotated[str, msgspec.Meta(max_length=4000)]
ImageUrl = Annotated[str, msgspec.Meta(max_length=512, pattern=r"^https?://")]
Price = Annotated[int, msgspec.Meta(ge=1, le=100_000_000)]
Stock = Annotated[int, msgspec.Meta(ge=0, le=10_000_000)]
Limit = Annotated[int, msgspec.Meta(ge=1, le=10_000)]
BranchIds = Annotated[list[Id], msgspec.Meta(max_length=100)]


class MallItemCreate(msgspec.Struct, forbid_unknown_fields=True):
    kind: MallItemKind
    title: Title
    points_price: Price
    stock_total: Stock
    description: Description = ""
    image_urls: Annotated[list[ImageUrl], msgspec.Meta(max_length=20)] = []
    limit_per_customer: Limit | None = None
    limit_per_month: Limit | None = None
    available_from: Instant | None = None
    available_until: Instant | None = None
    min_tier_level: Annotated[int, msgspec.Meta(ge=0, le=100)] | None = None
    voucher_valid_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] = 30
    branch_ids: BranchIds = []
    service_id: Id | None = None
    on_shelf: bool = False
    sort_order: Annotated[int, msgspec.Meta(ge=-1_000_000, le=1_000_000)] = 0


class MallItemUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Every field optional; null clears the nullable ones (limits, window, tier, service)."""

    kind: MallItemKind | msgspec.UnsetType = msgspec.UNSET
    title: Title | msgspec.UnsetType = msgspec.UNSET
    points_price: Price | msgspec.UnsetType = msgspec.UNSET
    stock_total: Stock | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType = msgspec.UNSET
    image_urls: Annotated[list[ImageUrl], msgspec.Meta(max_length=20)] | msgspec.UnsetType = msgspec.UNSET
    limit_per_customer: Limit | None | msgspec.UnsetType = msgspec.UNSET
    limit_per_month: Limit | None | msgspec.UnsetType = msgspec.UNSET
    available_from: Instant | None | msgspec.UnsetType = msgspec.UNSET
    available_until: Instant | None | msgspec.UnsetType = msgspec.UNSET
    min_tier_level: Annotated[int, msgspec.Meta(ge=0, le=100)] | None | msgspec.UnsetType = msgspec.UNSET
    voucher_valid_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | msgspec.UnsetType = msgspec.UNSET
    branch_ids: BranchIds | msgspec.UnsetType = msgspec.UNSET
    service_id: Id | None | msgspec.UnsetType = msgspec.UNSET
    on_shelf: bool | msgspec.UnsetType = msgspec.UNSET
    sort_order: Annotated[int, msgspec.Meta(ge=-1_000_000, le=1_000_000)] | msgspec.UnsetType = msgspec.UNSET


class MallItemStaffView(msgspec.Struct):
    id: int
    kind: MallItemKind
    title: str
    description: str
    image_urls: list[str]
    points_price: int
    stock_total: int
    stock_reserved: int
    stock_available: int
    limit_per_customer: int | None
    limit_per_month: int | None
    available_from: datetime | None
    available_until: datetime | None
    min_tier_level: int | None
    voucher_valid_days: int
    branch_ids: list[int]
    service_id: int | None
    on_shelf: bool
    sort_order: int
    archived: bool
    updated_at: datetime

    @classmethod
    def of(cls, i: MallItem) -> "MallItemStaffView":
        return cls(
            id=i.id, kind=i.kind, title=i.title, description=i.description, image_urls=i.image_urls,
            points_price=i.points_price, stock_total=i.stock_total, stock_reserved=i.stock_reserved,
            stock_available=max(0, i.stock_total - i.stock_reserved), limit_per_customer=i.limit_per_customer,
            limit_per_month=i.limit_per_month, available_from=i.available_from, available_until=i.available_until,
            min_tier_level=i.min_tier_level, voucher_valid_days=i.voucher_valid_days, branch_ids=i.branch_ids,
            service_id=i.service_id, on_shelf=i.on_shelf, sort_order=i.sort_order, archived=i.archived,
            updated_at=i.updated_at,
        )


class MallItemForCustomer(msgspec.Struct):
    id: int
    kind: MallItemKind
    title: str
    description: str
    image_urls: list[str]
    points_price: int
    stock_available: int
    limit_per_customer: int | None
    limit_per_month: int | None
    available_until: datetime | None
    min_tier_level: int | None
    voucher_valid_days: int
    branch_ids: list[int]
    can_redeem: bool
    # Why not, as stable codes: not_available, out_of_stock, tier_required, limit_reached, insufficient_points.
    reasons: list[str]

    @classmethod
    def of(cls, i: MallItem, reasons: list[str]) -> "MallItemForCustomer":
        return cls(
            id=i.id, kind=i.kind, title=i.title, description=i.description, image_urls=i.image_urls,
            points_price=i.points_price, stock_available=max(0, i.stock_total - i.stock_reserved),
            limit_per_customer=i.limit_per_customer, limit_per_month=i.limit_per_month,
            available_until=i.available_until, min_tier_level=i.min_tier_level,
            voucher_valid_days=i.voucher_valid_days, branch_ids=i.branch_ids, can_redeem=not reasons, reasons=reasons,
        )


class RedemptionCreate(msgspec.Struct, forbid_unknown_fields=True):
    item_id: Id
    quantity: Annotated[int, msgspec.Meta(ge=1, le=10)] = 1


class VoucherView(msgspec.Struct):
    id: int
    code: str
    qr_text: str
    title: str
    status: VoucherStatus
    valid_until: datetime
    branch_ids: list[int]
    source_type: str
    source_id: str
    issued_at: datetime
    redeemed_at: datetime | None
    cancelled_at: datetime | None

    @classmethod
    def of(cls, v: Voucher) -> "VoucherView":
        return cls(id=v.id, code=v.code, qr_text=v.qr_text, title=v.title, status=v.status, valid_until=v.valid_until,
                   branch_ids=v.branch_ids, source_type=v.source_type, source_id=v.source_id, issued_at=v.issued_at,
                   redeemed_at=v.redeemed_at, cancelled_at=v.cancelled_at)


class VoucherPage(Page):
    items: list[VoucherView]


class RedemptionView(msgspec.Struct):
    id: int
    customer_id: int
    item_id: int
    item_title: str
    item_kind: MallItemKind
    quantity: int
    unit_points: int
    points_spent: int
    status: RedemptionStatus
    cancelled_quantity: int
    created_at: datetime
    vouchers: list[VoucherView]

    @classmethod
    def of(cls, r: MallRedemption, vouchers: list[Voucher]) -> "RedemptionView":
        return cls(id=r.id, customer_id=r.customer_id, item_id=r.item_id, item_title=r.item_title,  # type: ignore[attr-defined]
                   item_kind=r.item_kind, quantity=r.quantity, unit_points=r.unit_points, points_spent=r.points_spent,
                   status=r.status, cancelled_quantity=r.cancelled_quantity, created_at=r.created_at,
                   vouchers=[VoucherView.of(v) for v in vouchers])


class RedemptionPage(Page):
    items: list[RedemptionView]


class RedeemVoucher(msgspec.Struct, forbid_unknown_fields=True):
    branch_id: Id


class VoucherAtDesk(msgspec.Struct):
    """What the front desk sees before redeeming: the voucher, whose it is, and whether it can be redeemed."""

    voucher: VoucherView
    customer_id: int
    customer_nickname: str
    customer_phone: str | None
    redeemable: bool
    refusal: str | None
    redeemed_branch_id: int | None
    redeemed_by_staff_id: int | None
