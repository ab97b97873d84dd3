"""Request and response structs of the money products: catalogue, checkout quote and purchase, coupons,
stored value, package cards."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

import msgspec

from orders.product_models import (
    Coupon,
    CouponKind,
    CouponStatus,
    CouponTemplate,
    PackageCard,
    PackageCardStatus,
    PackageSession,
    Product,
    ProductKind,
)

Fen = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]
FenOrZero = Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]
RowId = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]


class CardItem(msgspec.Struct, forbid_unknown_fields=True):
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=127)]
    sessions: Annotated[int, msgspec.Meta(ge=1, le=100)]


class MemberPrice(msgspec.Struct, forbid_unknown_fields=True):
    tier_id: RowId
    price_fen: Fen


class ProductCreate(msgspec.Struct, forbid_unknown_fields=True):
    kind: ProductKind
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=127)]
    price_fen: Fen
    category: Annotated[str, msgspec.Meta(max_length=32)] = ""
    description: Annotated[str, msgspec.Meta(max_length=500)] = ""
    branch_id: RowId | None = None
    items: Annotated[list[CardItem], msgspec.Meta(max_length=20)] = []
    validity_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None
    topup_bonus_fen: FenOrZero = 0
    member_prices: Annotated[list[MemberPrice], msgspec.Meta(max_length=20)] = []
    is_active: bool = True


class ProductUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=127)] | None = None
    price_fen: Fen | None = None
    category: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    description: Annotated[str, msgspec.Meta(max_length=500)] | None = None
    validity_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None
    topup_bonus_fen: FenOrZero | None = None
    member_prices: Annotated[list[MemberPrice], msgspec.Meta(max_length=20)] | None = None
    is_active: bool | None = None


class ProductOut(msgspec.Struct):
    id: int
    kind: ProductKind
    name: str
    category: str
    description: str
    price_fen: int
    branch_id: int | None
    items: list[CardItem]
    validity_days: int | None
    topup_bonus_fen: int
    member_prices: list[MemberPrice]
    is_active: bool

    @classmethod
    def of(cls, p: Product, member_prices: dict[int, int]) -> "ProductOut":
        return cls(id=p.id, kind=p.kind, name=p.name, category=p.category, description=p.description,
                   price_fen=p.price_fen, branch_id=p.branch_id,
                   items=[CardItem(title=i["title"], sessions=int(i["sessions"])) for i in p.items],
                   validity_days=p.validity_days, topup_bonus_fen=p.topup_bonus_fen,
                   member_prices=[MemberPrice(tier_id=t, price_fen=f) for t, f in sorted(member_prices.items())],
                   is_active=p.is_active)


class ProductPage(msgspec.Struct):
    total: int
    items: list[ProductOut]


class CheckoutItem(msgspec.Struct, forbid_unknown_fields=True):
    product_id: RowId
    quantity: Annotated[int, msgspec.Meta(ge=1, le=99)] = 1


class CheckoutRequest(msgspec.Struct, forbid_unknown_fields=True):
    items: Annotated[list[CheckoutItem], msgspec.Meta(min_length=1, max_length=20)]
    coupon_id: RowId | None = None
    use_points: bool = False
    # At most this many points (omitted: as many as the rule allows).
    max_points: Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)] | None = None
    use_stored_value: bool = False


class PurchaseRequest(CheckoutRequest, forbid_unknown_fields=True):
    # What the quote said WeChat Pay would take: if it moved, the purchase is refused (409 quote_changed).
    expected_wechat_fen: FenOrZero | None = None


class QuoteLineOut(msgspec.Struct):
    product_id: int
    name: str
    quantity: int
    list_unit_fen: int
    unit_fen: int
    amount_fen: int


class QuoteStep(msgspec.Struct):
    step: str  # list_price, member_price, coupon, points, stored_value, wechat_pay
    change_fen: int
    to_pay_fen: int


class QuoteOut(msgspec.Struct):
    lines: list[QuoteLineOut]
    steps: list[QuoteStep]
    list_fen: int
    member_discount_fen: int
    total_fen: int
    coupon_id: int | None
    coupon_fen: int
    points_per_yuan: int
    points_available: int
    points_used: int
    points_cash_fen: int
    stored_value_available_fen: int
    stored_value_fen: int
    wechat_fen: int
    rounding: str

    @classmethod
    def of(cls, q) -> "QuoteOut":
        from orders.checkout import ROUNDING

        return cls(
            lines=[QuoteLineOut(product_id=ln.product.id, name=ln.product.name, quantity=ln.quantity,
                                list_unit_fen=ln.list_unit_fen, unit_fen=ln.unit_fen,
                                amount_fen=ln.unit_fen * ln.quantity) for ln in q.lines],
            steps=[QuoteStep(step=s, change_fen=c, to_pay_fen=t) for s, c, t in q.steps],
            list_fen=q.list_fen, member_discount_fen=q.member_discount_fen, total_fen=q.total_fen,
            coupon_id=q.coupon_id, coupon_fen=q.coupon_fen, points_per_yuan=q.points_per_yuan,
            points_available=q.points_available, points_used=q.points_used, points_cash_fen=q.points_cash_fen,
            stored_value_available_fen=q.stored_value_available_fen, stored_value_fen=q.stored_value_fen,
            wechat_fen=q.wechat_fen, rounding=ROUNDING)


class CheckoutRuleIn(msgspec.Struct, forbid_unknown_fields=True):
    points_per_yuan: Annotated[int, msgspec.Meta(ge=1, le=100_000)]
    points_max_share_bp: Annotated[int, msgspec.Meta(ge=0, le=10_000)]


class CheckoutRuleOut(msgspec.Struct):
    points_per_yuan: int
    points_max_share_bp: int


class CouponTemplateCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    kind: CouponKind
    value_fen: FenOrZero = 0
    threshold_fen: FenOrZero = 0
    discount_bp: Annotated[int, msgspec.Meta(ge=0, le=9999)] = 0
    free_product_id: RowId | None = None
    product_ids: Annotated[list[RowId], msgspec.Meta(max_length=100)] = []
    categories: Annotated[list[Annotated[str, msgspec.Meta(max_length=32)]], msgspec.Meta(max_length=20)] = []
    valid_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] = 30
    valid_until: datetime | None = None
    per_customer_limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 1
    claimable: bool = False
    is_active: bool = True


class CouponTemplateUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """What may change once coupons are out: texts, validity of coupons issued from now on, the limit, whether
    customers may claim it, on or off. The kind, amounts and scope are fixed (issued coupons are priced by them)."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    valid_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None
    valid_until: datetime | None = None
    per_customer_limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] | None = None
    claimable: bool | None = None
    is_active: bool | None = None


class CouponTemplateOut(msgspec.Struct):
    id: int
    name: str
    kind: CouponKind
    value_fen: int
    threshold_fen: int
    discount_bp: int
    free_product_id: int | None
    product_ids: list[int]
    categories: list[str]
    valid_days: int
    valid_until: datetime | None
    per_customer_limit: int
    claimable: bool
    is_active: bool

    @classmethod
    def of(cls, t: CouponTemplate) -> "CouponTemplateOut":
        return cls(id=t.id, name=t.name, kind=t.kind, value_fen=t.value_fen, threshold_fen=t.threshold_fen,
                   discount_bp=t.discount_bp, free_product_id=t.free_product_id, product_ids=list(t.product_ids),
                   categories=list(t.categories), valid_days=t.valid_days, valid_until=t.valid_until,
                   per_customer_limit=t.per_customer_limit, claimable=t.claimable, is_active=t.is_active)


class CouponIssue(msgspec.Struct, forbid_unknown_fields=True):
    customer_ids: Annotated[list[RowId], msgspec.Meta(min_length=1, max_length=500)]


class CouponOut(msgspec.Struct):
    id: int
    template: CouponTemplateOut
    status: CouponStatus
    source: str
    valid_from: datetime
    valid_until: datetime
    order_id: int | None

    @classmethod
    def of(cls, c: Coupon, t: CouponTemplate) -> "CouponOut":
        return cls(id=c.id, template=CouponTemplateOut.of(t), status=c.status, source=c.source,
                   valid_from=c.valid_from, valid_until=c.valid_until, order_id=c.order_id)


class CouponIssueResult(msgspec.Struct):
    issued: int
    already_held: int
    refused: list[int]


class CouponClaim(msgspec.Struct, forbid_unknown_fields=True):
    template_id: RowId


class StoredValueEntryOut(msgspec.Struct):
    kind: str
    principal_delta_fen: int
    bonus_delta_fen: int
    order_id: int | None
    created_at: datetime


class StoredValueOut(msgspec.Struct):
    principal_fen: int
    bonus_fen: int
    balance_fen: int
    spend_order: str
    entries: list[StoredValueEntryOut]


class LiabilityOut(msgspec.Struct):
    as_of: date
    principal_fen: int
    bonus_fen: int
    total_fen: int
    accounts: int


class SessionOut(msgspec.Struct):
    seq: int
    title: str
    value_fen: int
    redeemed_at: datetime | None
    redeemed_branch_id: int | None
    refunded_at: datetime | None


class PackageCardOut(msgspec.Struct):
    id: int
    code: str
    title: str
    order_id: int
    branch_id: int | None
    paid_fen: int
    sessions_total: int
    sessions_left: int
    status: PackageCardStatus
    expires_at: datetime | None
    sessions: list[SessionOut]

    @classmethod
    def of(cls, c: PackageCard, sessions: list[PackageSession]) -> "PackageCardOut":
        return cls(id=c.id, code=c.code, title=c.title, order_id=c.order_id, branch_id=c.branch_id,
                   paid_fen=c.paid_fen, sessions_total=c.sessions_total,
                   sessions_left=sum(1 for s in sessions if s.redeemed_at is None and s.refunded_at is None),
                   status=c.status, expires_at=c.expires_at,
                   sessions=[SessionOut(seq=s.seq, title=s.title, value_fen=s.value_fen, redeemed_at=s.redeemed_at,
                                        redeemed_branch_id=s.redeemed_branch_id, refunded_at=s.refunded_at)
                             for s in sessions])


class SessionRedeem(msgspec.Struct, forbid_unknown_fields=True):
    code: Annotated[str, msgspec.Meta(min_length=4, max_length=32)]
    branch_id: RowId
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=127)] | None = None


class SessionRedeemed(msgspec.Struct):
    card_id: int
    seq: int
    title: str
    sessions_left: int


class CardRefundOut(msgspec.Struct):
    refund_id: int
    out_refund_no: str
    amount_fen: int
    sessions_refunded: int
