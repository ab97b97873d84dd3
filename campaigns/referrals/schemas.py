"""Request and response structs of the referral routes (customer view, programs, review, settlement)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

import msgspec

from campaigns.referrals.models import (
    AttemptOutcome,
    BatchStatus,
    BindingAttempt,
    BindingStatus,
    RefusalReason,
    ReferralBinding,
    ReferralProgram,
    ReferralReward,
    ReferrerRewardType,
    RewardKind,
    RewardStatus,
    SettlementBatch,
    WelcomeRewardType,
)
from campaigns.referrals.views import Friend, RewardTotals
from kernel.schemas import Page

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Text = Annotated[str, msgspec.Meta(max_length=512)]
Instant = Annotated[datetime, msgspec.Meta(tz=True)]
Days = Annotated[int, msgspec.Meta(ge=1, le=365)]
HoldDays = Annotated[int, msgspec.Meta(ge=0, le=90)]
Fen = Annotated[int, msgspec.Meta(ge=0, le=10**12)]
PositiveValue = Annotated[int, msgspec.Meta(ge=1, le=10**10)]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]


class ProgramCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A referral program. Percentages are basis points (1000 = 10%); money is fen."""

    name: Name
    starts_at: Instant
    referrer_reward_type: ReferrerRewardType
    referrer_reward_value: PositiveValue
    description: Text = ""
    is_active: bool = False
    ends_at: Instant | None = None
    binding_valid_days: Days = 30
    qualify_within_days: Days = 30
    min_amount_fen: Fen = 0
    hold_days: HoldDays = 7
    second_level_reward_type: ReferrerRewardType | None = None
    second_level_reward_value: Annotated[int, msgspec.Meta(ge=0, le=10**10)] = 0
    welcome_reward_type: WelcomeRewardType = WelcomeRewardType.none
    welcome_points: Annotated[int, msgspec.Meta(ge=0, le=10**7)] = 0
    welcome_voucher_title: Annotated[str, msgspec.Meta(max_length=64)] = ""
    welcome_voucher_valid_days: Days = 30
    monthly_cap_count: Annotated[int, msgspec.Meta(ge=1, le=10**6)] | None = None
    monthly_cap_fen: Annotated[int, msgspec.Meta(ge=1, le=10**12)] | None = None
    burst_window_minutes: Annotated[int, msgspec.Meta(ge=1, le=7 * 24 * 60)] = 60
    burst_max_referees: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 10


class ProgramUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Every field optional; `null` clears a nullable field (ends_at, second level, caps)."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    description: Text | msgspec.UnsetType = msgspec.UNSET
    is_active: bool | msgspec.UnsetType = msgspec.UNSET
    starts_at: Instant | msgspec.UnsetType = msgspec.UNSET
    ends_at: Instant | None | msgspec.UnsetType = msgspec.UNSET
    binding_valid_days: Days | msgspec.UnsetType = msgspec.UNSET
    qualify_within_days: Days | msgspec.UnsetType = msgspec.UNSET
    min_amount_fen: Fen | msgspec.UnsetType = msgspec.UNSET
    hold_days: HoldDays | msgspec.UnsetType = msgspec.UNSET
    referrer_reward_type: ReferrerRewardType | msgspec.UnsetType = msgspec.UNSET
    referrer_reward_value: PositiveValue | msgspec.UnsetType = msgspec.UNSET
    second_level_reward_type: ReferrerRewardType | None | msgspec.UnsetType = msgspec.UNSET
    second_level_reward_value: Annotated[int, msgspec.Meta(ge=0, le=10**10)] | msgspec.UnsetType = msgspec.UNSET
    welcome_reward_type: WelcomeRewardType | msgspec.UnsetType = msgspec.UNSET
    welcome_points: Annotated[int, msgspec.Meta(ge=0, le=10**7)] | msgspec.UnsetType = msgspec.UNSET
    welcome_voucher_title: Annotated[str, msgspec.Meta(max_length=64)] | msgspec.UnsetType = msgspec.UNSET
    welcome_voucher_valid_days: Days | msgspec.UnsetType = msgspec.UNSET
    monthly_cap_count: Annotated[int, msgspec.Meta(ge=1, le=10**6)] | None | msgspec.UnsetType = msgspec.UNSET
    monthly_cap_fen: Annotated[int, msgspec.Meta(ge=1, le=10**12)] | None | msgspec.UnsetType = msgspec.UNSET
    burst_window_minutes: Annotated[int, msgspec.Meta(ge=1, le=7 * 24 * 60)] | msgspec.UnsetType = msgspec.UNSET
    burst_max_referees: Annotated[int, msgspec.Meta(ge=1, le=10_000)] | msgspec.UnsetType = msgspec.UNSET

    def changes(self) -> dict[str, Any]:
        return {
            name: value
            for name in self.__struct_fields__
            if (value := getattr(self, name)) is not msgspec.UNSET
        }


class Program(msgspec.Struct):
    id: int
    name: str
    description: str
    is_active: bool
    starts_at: datetime
    ends_at: datetime | None
    binding_valid_days: int
    qualify_within_days: int
    min_amount_fen: int
    hold_days: int
    referrer_reward_type: ReferrerRewardType
    referrer_reward_value: int
    second_level_reward_type: ReferrerRewardType | None
    second_level_reward_value: int
    welcome_reward_type: WelcomeRewardType
    welcome_points: int
    welcome_voucher_title: str
    welcome_voucher_valid_days: int
    monthly_cap_count: int | None
    monthly_cap_fen: int | None
    burst_window_minutes: int
    burst_max_referees: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, p: ReferralProgram) -> "Program":
        return cls(**{name: getattr(p, name) for name in cls.__struct_fields__})


class ProgramPage(Page):
    items: list[Program]


class ProgramSummary(msgspec.Struct):
    """What a customer is told about the program they share."""

    id: int
    name: str
    description: str
    referrer_reward_type: ReferrerRewardType
    referrer_reward_value: int
    min_amount_fen: int
    welcome_reward_type: WelcomeRewardType
    welcome_points: int
    welcome_voucher_title: str
    ends_at: datetime | None


class MyReferral(msgspec.Struct):
    referral_code: str
    # The mini-program page a friend opens; the code travels as the `referral_code` query parameter.
    share_path: str
    # wxacode.getUnlimited image (scene = the code), base64 PNG; null if WeChat could not make one.
    qr_code_png_base64: str | None
    program: ProgramSummary | None


class FriendOut(msgspec.Struct):
    masked_name: str
    bound_at: datetime
    status: str
    reward_status: str | None
    reward_amount_fen: int
    reward_points: int

    @classmethod
    def of(cls, f: Friend) -> "FriendOut":
        return cls(
            masked_name=f.masked_name, bound_at=f.bound_at, status=f.status, reward_status=f.reward_status,
            reward_amount_fen=f.reward_amount_fen, reward_points=f.reward_points,
        )


class Totals(msgspec.Struct):
    pending_fen: int
    payable_fen: int
    paid_fen: int
    clawed_back_fen: int
    pending_points: int
    paid_points: int

    @classmethod
    def of(cls, t: RewardTotals) -> "Totals":
        return cls(**{name: getattr(t, name) for name in cls.__struct_fields__})


class MyReferrals(Page):
    totals: Totals
    items: list[FriendOut]


class Attempt(msgspec.Struct):
    id: int
    referee_id: int
    code: str
    referrer_id: int | None
    program_id: int | None
    outcome: AttemptOutcome
    reason: RefusalReason | None
    created_at: datetime

    @classmethod
    def of(cls, a: BindingAttempt) -> "Attempt":
        return cls(**{name: getattr(a, name) for name in cls.__struct_fields__})


class AttemptPage(Page):
    items: list[Attempt]


class Binding(msgspec.Struct):
    id: int
    program_id: int
    referee_id: int
    referrer_id: int
    code: str
    status: BindingStatus
    bound_at: datetime
    expires_at: datetime
    qualify_until: datetime
    qualified_at: datetime | None
    qualifying_consumption_id: int | None
    signals: list[str]
    flagged: bool

    @classmethod
    def of(cls, b: ReferralBinding) -> "Binding":
        return cls(**{name: getattr(b, name) for name in cls.__struct_fields__})


class BindingPage(Page):
    items: list[Binding]


class Reward(msgspec.Struct):
    id: int
    program_id: int
    binding_id: int
    referee_id: int
    beneficiary_id: int
    level: int
    kind: RewardKind
    amount_fen: int
    points: int
    status: RewardStatus
    hold_reason: str | None
    signals: list[str]
    qualifying_consumption_id: int
    qualifying_amount_fen: int
    hold_until: datetime
    payable_at: datetime | None
    batch_id: int | None
    paid_at: datetime | None
    reversed_at: datetime | None
    cancel_reason: str
    decided_by_id: int | None
    decision_reason: str
    created_at: datetime

    @classmethod
    def of(cls, r: ReferralReward) -> "Reward":
        return cls(**{name: getattr(r, name) for name in cls.__struct_fields__})


class RewardPage(Page):
    items: list[Reward]


class RewardDecision(msgspec.Struct, forbid_unknown_fields=True):
    reason: Reason


class BatchCreate(msgspec.Struct, forbid_unknown_fields=True):
    """Settle every payable reward whose hold ended on or before `up_to` (clinic local date)."""

    up_to: date
    note: Annotated[str, msgspec.Meta(max_length=255)] = ""


class MarkPaid(msgspec.Struct, forbid_unknown_fields=True):
    external_ref: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:/-]+$")]


class Batch(msgspec.Struct):
    id: int
    status: BatchStatus
    up_to: date
    total_fen: int
    rewards_fen: int
    adjustments_fen: int
    payee_count: int
    reward_count: int
    adjustment_count: int
    created_by_id: int
    approved_by_id: int | None
    paid_by_id: int | None
    cancelled_by_id: int | None
    external_ref: str | None
    note: str
    created_at: datetime
    approved_at: datetime | None
    paid_at: datetime | None
    cancelled_at: datetime | None

    @classmethod
    def of(cls, b: SettlementBatch) -> "Batch":
        return cls(**{name: getattr(b, name) for name in cls.__struct_fields__})


class BatchPage(Page):
    items: list[Batch]


# One payee's line of a settlement batch (review and export); `settlement.payee_lines` builds them, and no
# docstring here: it would become the OpenAPI description.
class PayeeLineOut(msgspec.Struct, frozen=True):
    payee_id: int
    nickname: str
    phone_masked: str
    reward_count: int
    rewards_fen: int
    adjustment_count: int
    adjustments_fen: int
    net_fen: int  # rewards_fen + adjustments_fen (adjustments are negative)
    # "customer" or "staff" (a staff referral payout; payee_id is then the staff member's id).
    payee_kind: str = "customer"


class BatchReview(msgspec.Struct):
    batch: Batch
    lines: list[PayeeLineOut]
