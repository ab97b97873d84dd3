"""Request and response structs of the points routes (check-in, points, consumptions, rules, tiers, liability);
the mall's (items, redemptions, vouchers) are in mall_schemas.py."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

import msgspec

from kernel.schemas import Id, Page
from kernel.wechat.miniprogram import TEMPLATE_ID_MAX_CHARS
from points_mall.models import (
    ApprovalStatus,
    CheckIn,
    Consumption,
    ConsumptionApproval,
    ConsumptionSource,
    EntryKind,
    MemberTier,
    PointsLedgerEntry,
    PointsRules,
    TierChange,
    TierMatch,
)

Ref = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9:._\-]+$")]
AmountFen = Annotated[int, msgspec.Meta(gt=0, le=10_000_000_000)]
NonNegative = Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000)]


class CheckInDone(msgspec.Struct):
    date: date
    points: int
    streak: int
    day_in_cycle: int
    tomorrow_points: int
    balance: int


class MakeupCheckIn(msgspec.Struct, forbid_unknown_fields=True):
    date: date


class CalendarDay(msgspec.Struct):
    date: date
    points: int
    streak: int
    makeup: bool

    @classmethod
    def of(cls, row: CheckIn) -> "CalendarDay":
        return cls(date=row.local_date, points=row.points, streak=row.streak, makeup=row.makeup)


class Calendar(msgspec.Struct):
    month: str
    days: list[CalendarDay]
    streak: int
    checked_in_today: bool
    today_points: int
    tomorrow_points: int
    cycle_days: int
    makeup_enabled: bool
    makeup_cost_points: int
    makeup_left_this_month: int
    makeup_dates: list[date]


class TierInfo(msgspec.Struct):
    id: int
    name: str
    level: int
    multiplier_pct: int
    benefits: str
    min_spend_fen: int | None
    min_referrals: int | None
    match: str


class NextTier(msgspec.Struct):
    tier: TierInfo
    spend_needed_fen: int | None
    referrals_needed: int | None


class Standing(msgspec.Struct):
    spend_fen: int
    referrals: int


class PointsOverview(msgspec.Struct):
    balance: int
    spendable: int
    pending: int
    expiring_soon: int
    expiring_soon_until: datetime
    next_expiry_at: datetime | None
    shortfall: int
    lifetime_earned: int
    tier: TierInfo | None
    standing: Standing
    next_tier: NextTier | None


class LedgerEntry(msgspec.Struct):
    id: int
    delta: int
    kind: EntryKind
    reason: str
    balance_after: int
    occurred_at: datetime
    expires_at: datetime | None

    @classmethod
    def of(cls, e: PointsLedgerEntry) -> "LedgerEntry":
        return cls(id=e.id, delta=e.delta, kind=e.kind, reason=e.reason, balance_after=e.balance_after,
                   occurred_at=e.occurred_at, expires_at=e.expires_at)


class StaffLedgerEntry(LedgerEntry):
    ref: str = ""
    original_ref: str | None = None
    detail: dict = {}

    @classmethod
    def of(cls, e: PointsLedgerEntry) -> "StaffLedgerEntry":
        return cls(id=e.id, delta=e.delta, kind=e.kind, reason=e.reason, balance_after=e.balance_after,
                   occurred_at=e.occurred_at, expires_at=e.expires_at, ref=e.ref, original_ref=e.original_ref,
                   detail=e.detail)


class LedgerPage(Page):
    items: list[LedgerEntry]


class StaffLedgerPage(Page):
    items: list[StaffLedgerEntry]


class ConsumptionCreate(msgspec.Struct, forbid_unknown_fields=True):
    customer_id: Id
    amount_fen: AmountFen
    external_ref: Ref
    branch_id: Id | None = None
    service_id: Id | None = None


class ConsumptionApprovalView(msgspec.Struct):
    """A consumption above the approval threshold: `pending` earns nothing until another member approves it."""

    id: int
    customer_id: int
    amount_fen: int
    external_ref: str
    branch_id: int | None
    service_id: int | None
    status: ApprovalStatus
    recorded_by_id: int
    decided_by_id: int | None
    decided_at: datetime | None
    decision_note: str
    consumption_id: int | None
    created_at: datetime

    @classmethod
    def of(cls, a: ConsumptionApproval) -> "ConsumptionApprovalView":
        return cls(
            id=a.id, customer_id=a.customer_id, amount_fen=a.amount_fen, external_ref=a.external_ref,  # type: ignore[attr-defined]
            branch_id=a.branch_id, service_id=a.service_id, status=a.status, recorded_by_id=a.recorded_by_id,
            decided_by_id=a.decided_by_id, decided_at=a.decided_at, decision_note=a.decision_note,
            consumption_id=a.consumption_id, created_at=a.created_at,
        )


class ConsumptionApprovalPage(Page):
    items: list[ConsumptionApprovalView]


class ConsumptionDecision(msgspec.Struct, forbid_unknown_fields=True):
    note: Annotated[str, msgspec.Meta(max_length=200)] = ""


class ConsumptionRefundCreate(msgspec.Struct, forbid_unknown_fields=True):
    refunded_fen: AmountFen
    # The clinic system's id of this refund: repeating it changes nothing.
    ref: Ref


class ConsumptionView(msgspec.Struct):
    id: int
    customer_id: int
    amount_fen: int
    refunded_fen: int
    source: ConsumptionSource
    external_ref: str
    branch_id: int | None
    service_id: int | None
    staff_id: int | None
    points: int
    points_reversed: int
    points_status: str
    occurred_at: datetime

    @classmethod
    def of(cls, c: Consumption, points_status: str) -> "ConsumptionView":
        return cls(
            id=c.id, customer_id=c.customer_id, amount_fen=c.amount_fen, refunded_fen=c.refunded_fen,  # type: ignore[attr-defined]
            source=c.source, external_ref=c.external_ref, branch_id=c.branch_id, service_id=c.service_id,
            staff_id=c.staff_id, points=c.points, points_reversed=c.points_reversed, points_status=points_status,
            occurred_at=c.occurred_at,
        )


class ConsumptionPage(Page):
    items: list[ConsumptionView]


BonusTable = Annotated[dict[str, NonNegative], msgspec.Meta(max_length=366)]


class Rules(msgspec.Struct):
    checkin_base_points: int
    checkin_cycle_days: int
    checkin_bonus: dict[str, int]
    makeup_enabled: bool
    makeup_cost_points: int
    makeup_per_month: int
    earn_points_per_unit: int
    earn_unit_fen: int
    pending_days: int
    expiry_months: int
    expiry_reminder_days: int
    expiry_reminder_template_id: str
    tier_window_months: int
    voucher_expiry_returns_points: bool
    updated_at: datetime
    updated_by_staff_id: int | None

    @classmethod
    def of(cls, r: PointsRules) -> "Rules":
        return cls(**{f: getattr(r, f) for f in cls.__struct_fields__})


class RulesUpdate(msgspec.Struct, forbid_unknown_fields=True):
    checkin_base_points: Annotated[int, msgspec.Meta(ge=0, le=10_000)] | None = None
    checkin_cycle_days: Annotated[int, msgspec.Meta(ge=1, le=366)] | None = None
    checkin_bonus: BonusTable | None = None
    makeup_enabled: bool | None = None
    makeup_cost_points: Annotated[int, msgspec.Meta(ge=0, le=100_000)] | None = None
    makeup_per_month: Annotated[int, msgspec.Meta(ge=0, le=31)] | None = None
    earn_points_per_unit: Annotated[int, msgspec.Meta(ge=0, le=10_000)] | None = None
    earn_unit_fen: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] | None = None
    pending_days: Annotated[int, msgspec.Meta(ge=0, le=365)] | None = None
    expiry_months: Annotated[int, msgspec.Meta(ge=0, le=120)] | None = None
    expiry_reminder_days: Annotated[int, msgspec.Meta(ge=0, le=365)] | None = None
    expiry_reminder_template_id: Annotated[str, msgspec.Meta(max_length=TEMPLATE_ID_MAX_CHARS)] | None = None
    tier_window_months: Annotated[int, msgspec.Meta(ge=1, le=120)] | None = None
    voucher_expiry_returns_points: bool | None = None


class Tier(msgspec.Struct):
    id: int
    name: str
    level: int
    min_spend_fen: int | None
    min_referrals: int | None
    match: TierMatch
    multiplier_pct: int
    benefits: str
    is_active: bool

    @classmethod
    def of(cls, t: MemberTier) -> "Tier":
        return cls(id=t.id, name=t.name, level=t.level, min_spend_fen=t.min_spend_fen, min_referrals=t.min_referrals,
                   match=t.match, multiplier_pct=t.multiplier_pct, benefits=t.benefits, is_active=t.is_active)


TierName = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Level = Annotated[int, msgspec.Meta(ge=0, le=100)]
Multiplier = Annotated[int, msgspec.Meta(ge=0, le=1000)]
Benefits = Annotated[str, msgspec.Meta(max_length=2000)]


class TierCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: TierName
    level: Level
    min_spend_fen: NonNegative | None = None
    min_referrals: NonNegative | None = None
    match: TierMatch = TierMatch.any
    multiplier_pct: Multiplier = 100
    benefits: Benefits = ""
    is_active: bool = True


class TierUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    name: TierName | msgspec.UnsetType = msgspec.UNSET
    level: Level | msgspec.UnsetType = msgspec.UNSET
    # null clears a threshold, so these distinguish "absent" from "null".
    min_spend_fen: NonNegative | None | msgspec.UnsetType = msgspec.UNSET
    min_referrals: NonNegative | None | msgspec.UnsetType = msgspec.UNSET
    match: TierMatch | msgspec.UnsetType = msgspec.UNSET
    multiplier_pct: Multiplier | msgspec.UnsetType = msgspec.UNSET
    benefits: Benefits | msgspec.UnsetType = msgspec.UNSET
    is_active: bool | msgspec.UnsetType = msgspec.UNSET


class TierChangeView(msgspec.Struct):
    id: int
    from_tier_id: int | None
    to_tier_id: int | None
    direction: str
    reason: str
    detail: dict
    occurred_at: datetime

    @classmethod
    def of(cls, c: TierChange) -> "TierChangeView":
        return cls(id=c.id, from_tier_id=c.from_tier_id, to_tier_id=c.to_tier_id, direction=c.direction,
                   reason=c.reason, detail=c.detail, occurred_at=c.occurred_at)


class AdjustmentCreate(msgspec.Struct, forbid_unknown_fields=True):
    customer_id: Id
    points: Annotated[int, msgspec.Meta(ge=-1_000_000, le=1_000_000)]
    reason: Annotated[str, msgspec.Meta(min_length=2, max_length=200)]


class AdjustmentDone(msgspec.Struct):
    entry: StaffLedgerEntry
    balance: int


class MonthPoints(msgspec.Struct):
    month: str
    points: int


class Liability(msgspec.Struct):
    as_of: datetime
    outstanding: int
    pending: int
    shortfall: int
    accounts: int
    customers_with_points: int
    expiring_by_month: list[MonthPoints]
    never_expiring: int
    pending_by_release_month: list[MonthPoints]


class CustomerPoints(msgspec.Struct):
    customer_id: int
    overview: PointsOverview
    tier_changes: list[TierChangeView]
