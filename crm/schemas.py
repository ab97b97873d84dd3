"""Request and response structs of the CRM routes. No response carries a full phone number (masked only)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

import msgspec

from crm.models import (
    AcquisitionChannel,
    ChannelKind,
    CouponOccasion,
    CouponRule,
    Outreach,
    OutreachStatus,
    RfmClass,
    RFM_LABELS,
    RfmHistory,
    RfmMovement,
    RfmRules,
    RfmScore,
    Segment,
    SegmentEvent,
    StaffReward,
    Tag,
    TagKind,
)
from kernel.identity.schemas import Page
from kernel.schemas import Id
from kernel.wechat.miniprogram import TEMPLATE_ID_MAX_CHARS, TemplateId

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Text = Annotated[str, msgspec.Meta(max_length=255)]
Instant = Annotated[datetime, msgspec.Meta(tz=True)]
Code = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Category = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]


class _Changes(msgspec.Struct, forbid_unknown_fields=True):
    def changes(self) -> dict[str, Any]:
        return {n: v for n in self.__struct_fields__ if (v := getattr(self, n)) is not msgspec.UNSET}


# --- tags --------------------------------------------------------------------------------------------

class TagCreate(msgspec.Struct, forbid_unknown_fields=True):
    code: Code
    name: Name
    category: Category
    kind: TagKind = TagKind.manual
    description: Text = ""


class TagUpdate(_Changes):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    category: Category | msgspec.UnsetType = msgspec.UNSET
    description: Text | msgspec.UnsetType = msgspec.UNSET


class TagOut(msgspec.Struct):
    id: int
    code: str
    name: str
    category: str
    kind: TagKind
    description: str
    created_at: datetime

    @classmethod
    def of(cls, t: Tag) -> "TagOut":
        return cls(t.id, t.code, t.name, t.category, t.kind, t.description, t.created_at)


class TagPage(Page):
    items: list[TagOut]


class CustomerTagPut(msgspec.Struct, forbid_unknown_fields=True):
    tag_id: int


class CustomerTagOut(msgspec.Struct):
    tag: TagOut
    source: TagKind
    added_at: datetime


class SkinAnalysisCreate(msgspec.Struct, forbid_unknown_fields=True):
    visit_date: date
    tags: Annotated[list[Code], msgspec.Meta(max_length=300)]


class SkinAnalysisOut(msgspec.Struct):
    id: int
    customer_id: int
    visit_date: date
    tag_ids: list[int]


class ImportResult(msgspec.Struct):
    rows_imported: int


# --- RFM ------------------------------------------------------------------------------------------------

class RfmRulesOut(msgspec.Struct):
    window_days: int
    recency_days: int
    frequency_min: int
    monetary_min_fen: int
    updated_at: datetime

    @classmethod
    def of(cls, r: RfmRules) -> "RfmRulesOut":
        return cls(r.window_days, r.recency_days, r.frequency_min, r.monetary_min_fen, r.updated_at)


class RfmRulesUpdate(_Changes):
    window_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | msgspec.UnsetType = msgspec.UNSET
    recency_days: Annotated[int, msgspec.Meta(ge=0, le=3650)] | msgspec.UnsetType = msgspec.UNSET
    frequency_min: Annotated[int, msgspec.Meta(ge=1, le=100_000)] | msgspec.UnsetType = msgspec.UNSET
    monetary_min_fen: Annotated[int, msgspec.Meta(ge=0, le=10**13)] | msgspec.UnsetType = msgspec.UNSET


class RfmOut(msgspec.Struct):
    rfm_class: RfmClass
    label: str
    as_of: date
    recency_days: int
    frequency: int
    monetary_fen: int

    @classmethod
    def of(cls, s: RfmScore | RfmHistory) -> "RfmOut":
        return cls(s.rfm_class, RFM_LABELS[s.rfm_class], s.as_of, s.recency_days, s.frequency, s.monetary_fen)


class MovementOut(msgspec.Struct):
    customer_id: int
    as_of: date
    from_class: RfmClass | None
    to_class: RfmClass
    label: str

    @classmethod
    def of(cls, m: RfmMovement) -> "MovementOut":
        start = RFM_LABELS[m.from_class] if m.from_class else "—"
        return cls(m.customer_id, m.as_of, m.from_class, m.to_class, f"{start} → {RFM_LABELS[m.to_class]}")


class MovementPage(Page):
    items: list[MovementOut]


class RfmDistribution(msgspec.Struct):
    classes: dict[str, int]


# --- segments ----------------------------------------------------------------------------------------

class Condition(msgspec.Struct, forbid_unknown_fields=True):
    field: str
    op: str
    value: Any


class SegmentRule(msgspec.Struct, forbid_unknown_fields=True):
    """AND of groups; OR of the conditions inside a group."""

    groups: list[list[Condition]]

    def as_dict(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)


class SegmentCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    rules: SegmentRule
    description: Text = ""


class SegmentUpdate(_Changes):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    description: Text | msgspec.UnsetType = msgspec.UNSET
    rules: SegmentRule | msgspec.UnsetType = msgspec.UNSET


class SegmentOut(msgspec.Struct):
    id: int
    name: str
    description: str
    rules: dict[str, Any]
    member_count: int
    recomputed_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, s: Segment) -> "SegmentOut":
        return cls(s.id, s.name, s.description, s.rules, s.member_count, s.recomputed_at, s.created_at, s.updated_at)


class SegmentPage(Page):
    items: list[SegmentOut]


class CountPreview(msgspec.Struct):
    count: int
    elapsed_ms: int


class RecomputeResult(msgspec.Struct):
    entered: int
    left: int
    member_count: int


class SegmentEventOut(msgspec.Struct):
    id: int
    customer_id: int
    kind: str
    occurred_at: datetime

    @classmethod
    def of(cls, e: SegmentEvent) -> "SegmentEventOut":
        return cls(e.id, e.customer_id, e.kind.value, e.occurred_at)


class SegmentEvents(msgspec.Struct):
    items: list[SegmentEventOut]
    next_after_id: int


class MemberPage(Page):
    customer_ids: list[int]


# --- outreach -----------------------------------------------------------------------------------------

class OutreachCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    segment_id: int
    voucher_title: Annotated[str, msgspec.Meta(max_length=128)] = ""
    voucher_valid_days: Annotated[int, msgspec.Meta(ge=1, le=365)] = 30
    voucher_service_id: int | None = None
    # None: unlimited; otherwise recipients given a gift (the voucher, the coupon or both) never exceed it.
    voucher_stock: Annotated[int, msgspec.Meta(ge=0, le=10_000_000)] | None = None
    # A coupon template (/admin/shop/coupon-templates) given with or instead of the voucher, once each.
    coupon_template_id: Id | None = None
    template_id: Annotated[str, msgspec.Meta(max_length=TEMPLATE_ID_MAX_CHARS)] = ""
    message_page: Annotated[str, msgspec.Meta(max_length=128)] = ""
    message_data: dict[Annotated[str, msgspec.Meta(max_length=32)], Annotated[str, msgspec.Meta(max_length=64)]] = {}
    holdout_bp: Annotated[int, msgspec.Meta(ge=0, le=5000)] = 0
    skip_upcoming_booking: bool = False
    lift_days: Annotated[int, msgspec.Meta(ge=1, le=90)] = 14


class OutreachSchedule(msgspec.Struct, forbid_unknown_fields=True):
    """at: when to run (absent or in the past: now)."""

    at: Instant | None = None


class OutreachOut(msgspec.Struct):
    id: int
    name: str
    segment_id: int
    status: OutreachStatus
    scheduled_at: datetime | None
    voucher_title: str
    voucher_stock: int | None
    vouchers_issued: int
    template_id: str
    holdout_bp: int
    skip_upcoming_booking: bool
    lift_days: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    coupon_template_id: int | None = None
    coupons_issued: int = 0

    @classmethod
    def of(cls, o: Outreach) -> "OutreachOut":
        return cls(o.id, o.name, o.segment_id, o.status, o.scheduled_at, o.voucher_title, o.voucher_stock,
                   o.vouchers_issued, o.template_id, o.holdout_bp, o.skip_upcoming_booking, o.lift_days,
                   o.created_at, o.started_at, o.finished_at, o.coupon_template_id, o.coupons_issued)


# --- coupon rules of occasions ------------------------------------------------------------------------

class CouponRuleUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """coupon_template_id: the template given on the occasion (null: none); with_voucher: birthday only,
    whether the birthday voucher is still given beside the coupon."""

    coupon_template_id: Id | None = None
    with_voucher: bool = True


class CouponRuleOut(msgspec.Struct):
    occasion: CouponOccasion
    coupon_template_id: int | None
    with_voucher: bool
    updated_at: datetime

    @classmethod
    def of(cls, rule: CouponRule) -> "CouponRuleOut":
        return cls(rule.occasion, rule.coupon_template_id, rule.with_voucher, rule.updated_at)


class OutreachPage(Page):
    items: list[OutreachOut]


class GroupResultOut(msgspec.Struct):
    customers: int
    booked: int
    redeemed: int
    paid: int
    booked_rate_bp: int
    redeemed_rate_bp: int
    paid_rate_bp: int


class OutreachResultsOut(msgspec.Struct):
    outreach: OutreachOut
    counts: dict[str, int]
    recipients: GroupResultOut
    holdout: GroupResultOut
    # Recipients' rate minus the holdout's, in basis points (positive = the outreach helped).
    lift_bp: dict[str, int]
    window_start: datetime | None
    window_end: datetime | None


# --- consent, opt-out (customer) -------------------------------------------------------------------------

class SubscribeResult(msgspec.Struct, forbid_unknown_fields=True):
    """What wx.requestSubscribeMessage returned: the template ids the customer accepted (each one of the
    clinic's, `CRM_OUTREACH_TEMPLATE_IDS`; the service refuses any other)."""

    accepted: Annotated[list[TemplateId], msgspec.Meta(max_length=20)]


class MarketingPreference(msgspec.Struct, forbid_unknown_fields=True):
    opt_out: bool


class MarketingStateOut(msgspec.Struct):
    opt_out: bool
    subscriptions: dict[str, int]


# --- acquisition -------------------------------------------------------------------------------------------

class ChannelCreate(msgspec.Struct, forbid_unknown_fields=True):
    kind: ChannelKind
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    name: Name
    staff_id: int | None = None
    staff_customer_id: int | None = None


class ChannelUpdate(_Changes):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    is_active: bool | msgspec.UnsetType = msgspec.UNSET
    staff_customer_id: int | None | msgspec.UnsetType = msgspec.UNSET


class ChannelOut(msgspec.Struct):
    id: int
    kind: ChannelKind
    code: str
    name: str
    staff_id: int | None
    staff_customer_id: int | None
    is_active: bool
    share_path: str

    @classmethod
    def of(cls, c: AcquisitionChannel) -> "ChannelOut":
        return cls(c.id, c.kind, c.code, c.name, c.staff_id, c.staff_customer_id, c.is_active,
                   f"/pages/index/index?scene={c.code}")


class ChannelPage(Page):
    items: list[ChannelOut]


class StaffRewardOut(msgspec.Struct):
    id: int
    staff_id: int
    customer_id: int
    consumption_id: int
    base_fen: int
    amount_fen: int
    status: str
    hold_until: datetime

    @classmethod
    def of(cls, r: StaffReward) -> "StaffRewardOut":
        return cls(r.id, r.staff_id, r.customer_id, r.consumption_id, r.base_fen, r.amount_fen, r.status.value,
                   r.hold_until)


class StaffRewardPage(Page):
    items: list[StaffRewardOut]


# --- customers (360) ---------------------------------------------------------------------------------------

class CustomerRow(msgspec.Struct):
    id: int
    nickname: str
    phone: str | None  # masked, e.g. 138****1234
    referral_code: str
    birth_date: date | None
    rfm_class: str | None
    created_at: datetime


class CustomerPage(Page):
    items: list[CustomerRow]


class Acquired(msgspec.Struct):
    kind: str
    code: str
    channel_id: int | None
    referrer_customer_id: int | None
    acquired_at: datetime


class CustomerCardOut(msgspec.Struct):
    id: int
    nickname: str
    gender: str
    birth_date: date | None
    phone: str | None  # masked
    referral_code: str
    created_at: datetime
    last_login_at: datetime
    acquisition: Acquired | None
    marketing_opt_out: bool
    subscriptions: dict[str, int]
    tags: list[CustomerTagOut]
    rfm: RfmOut | None
    rfm_history: list[RfmOut]
    points: dict[str, Any]
    bookings: list[dict[str, Any]]
    # Pre-triage forms without their answers: the answers are in GET /admin/customers/{id} (audited).
    triage: list[dict[str, Any]]
    orders: list[dict[str, Any]]
    vouchers: list[dict[str, Any]]
    referrals: dict[str, Any]
    surveys: list[dict[str, Any]]
    follow_ups: list[dict[str, Any]]
    outreach_received: list[dict[str, Any]]
