"""Tortoise models of referrals (老带新): programs, bindings, the binding log, rewards, adjustments, settlements."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class ReferrerRewardType(StrEnum):
    fixed_fen = "fixed_fen"  # a fixed cash amount per qualified friend
    percent = "percent"  # basis points of the qualifying amount (1000 = 10%)
    points = "points"  # points through the points ledger


class WelcomeRewardType(StrEnum):
    none = "none"
    points = "points"
    voucher = "voucher"  # a mall voucher (券), issued by the points room


class ReferralProgram(Model):
    """A referral program (转介绍活动): its window, its rewards and its rules, configured by campaign staff."""

    id = fields.BigIntField(primary_key=True)
    name = fields.CharField(max_length=64)
    description = fields.CharField(max_length=512, default="")
    is_active = fields.BooleanField(default=False)
    starts_at = fields.DatetimeField()
    ends_at = fields.DatetimeField(null=True)
    # How long a binding holds against later codes (first touch wins within it).
    binding_valid_days = fields.IntField(default=30)
    # The qualifying event: a consumption of at least min_amount_fen within this many days of binding.
    qualify_within_days = fields.IntField(default=30)
    min_amount_fen = fields.BigIntField(default=0)
    # The refund window: a reward stays pending this long after the qualifying consumption.
    hold_days = fields.IntField(default=7)
    referrer_reward_type = fields.CharEnumField(ReferrerRewardType, max_length=16)
    referrer_reward_value = fields.BigIntField()
    # The referrer's own referrer (level 2); null type means no second level. Never more than two.
    second_level_reward_type = fields.CharEnumField(ReferrerRewardType, max_length=16, null=True)
    second_level_reward_value = fields.BigIntField(default=0)
    welcome_reward_type = fields.CharEnumField(WelcomeRewardType, max_length=16, default=WelcomeRewardType.none)
    welcome_points = fields.IntField(default=0)
    welcome_voucher_title = fields.CharField(max_length=64, default="")
    welcome_voucher_valid_days = fields.IntField(default=30)
    # Per beneficiary per local month; rewards beyond a cap are held for review, never dropped.
    monthly_cap_count = fields.IntField(null=True)
    monthly_cap_fen = fields.BigIntField(null=True)
    # Fraud signal: more than burst_max_referees bindings to one referrer within the window.
    burst_window_minutes = fields.IntField(default=60)
    burst_max_referees = fields.IntField(default=10)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "referral_program"
        indexes = (("is_active", "starts_at"),)


class BindingStatus(StrEnum):
    bound = "bound"  # waiting for the qualifying event
    qualified = "qualified"  # the qualifying event happened; rewards were created


class ReferralBinding(Model):
    """The referral (转介绍) itself: one referee bound to one referrer. Unique per referee: first touch wins."""

    id = fields.BigIntField(primary_key=True)
    program = fields.ForeignKeyField(
        "referrals.ReferralProgram", related_name="bindings", on_delete=fields.RESTRICT
    )
    referee = fields.ForeignKeyField(
        "kernel.Customer", related_name="referral_binding", on_delete=fields.RESTRICT, unique=True
    )
    referrer = fields.ForeignKeyField("kernel.Customer", related_name="referrals_made", on_delete=fields.RESTRICT)
    code = fields.CharField(max_length=16)
    status = fields.CharEnumField(BindingStatus, max_length=16, default=BindingStatus.bound)
    bound_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    qualify_until = fields.DatetimeField()
    qualified_at = fields.DatetimeField(null=True)
    qualifying_consumption_id = fields.BigIntField(null=True, db_index=True)
    qualifying_amount_fen = fields.BigIntField(null=True)
    # Fraud signals seen at binding ("burst", "shared_phone"); rewards of a flagged binding are held.
    signals = fields.JSONField(default=list)
    flagged = fields.BooleanField(default=False, db_index=True)

    class Meta:
        table = "referral_binding"
        indexes = (("referrer_id", "bound_at"),)


class AttemptOutcome(StrEnum):
    bound = "bound"
    rebound = "rebound"  # the earlier binding had expired unqualified
    refused = "refused"


class RefusalReason(StrEnum):
    unknown_code = "unknown_code"
    self_referral = "self_referral"
    program_inactive = "program_inactive"
    already_bound = "already_bound"  # first touch wins
    referee_has_history = "referee_has_history"  # prior consumption or booking
    loop = "loop"  # the referrer was (directly or indirectly) referred by this referee


class BindingAttempt(Model):
    """Every login that carried a referral code, and what came of it (refusals are visible to staff)."""

    id = fields.BigIntField(primary_key=True)
    referee = fields.ForeignKeyField("kernel.Customer", related_name="referral_attempts", on_delete=fields.RESTRICT)
    code = fields.CharField(max_length=16)
    referrer_id = fields.BigIntField(null=True)
    program_id = fields.BigIntField(null=True)
    outcome = fields.CharEnumField(AttemptOutcome, max_length=16)
    reason = fields.CharEnumField(RefusalReason, max_length=32, null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "referral_binding_attempt"
        indexes = (("outcome", "reason", "id"), ("referrer_id", "created_at"))


class RewardKind(StrEnum):
    cash = "cash"  # settled by finance in a batch
    points = "points"  # credited to the points ledger when the hold ends
    voucher = "voucher"  # the welcome voucher, issued by the points room


class RewardStatus(StrEnum):
    pending = "pending"  # inside the hold period (the refund window)
    held = "held"  # over the cap or flagged: waits for staff to approve or void
    payable = "payable"  # hold passed; waits for a settlement batch (cash)
    batched = "batched"  # in a settlement batch that is not paid yet
    paid = "paid"  # paid out (cash), credited (points) or issued (welcome)
    cancelled = "cancelled"  # the qualifying consumption was refunded before payout
    voided = "voided"  # staff voided a held reward


class ReferralReward(Model):
    """One reward for one referee at one level: 0 = the referee's welcome, 1 = referrer, 2 = referrer's referrer."""

    id = fields.BigIntField(primary_key=True)
    program = fields.ForeignKeyField("referrals.ReferralProgram", related_name="rewards", on_delete=fields.RESTRICT)
    binding = fields.ForeignKeyField("referrals.ReferralBinding", related_name="rewards", on_delete=fields.RESTRICT)
    referee = fields.ForeignKeyField("kernel.Customer", related_name="referral_rewards_caused", on_delete=fields.RESTRICT)
    beneficiary = fields.ForeignKeyField(
        "kernel.Customer", related_name="referral_rewards", on_delete=fields.RESTRICT
    )
    level = fields.SmallIntField()
    kind = fields.CharEnumField(RewardKind, max_length=16)
    amount_fen = fields.BigIntField(default=0)
    points = fields.IntField(default=0)
    status = fields.CharEnumField(RewardStatus, max_length=16)
    hold_reason = fields.CharField(max_length=32, null=True)  # "over_cap" or "fraud_signal"
    signals = fields.JSONField(default=list)
    qualifying_consumption_id = fields.BigIntField()
    qualifying_amount_fen = fields.BigIntField()
    # The local month (YYYY-MM) of the qualifying event, and whether the reward used a slot of its cap.
    cap_month = fields.CharField(max_length=7)
    cap_counted = fields.BooleanField(default=False)
    hold_until = fields.DatetimeField()
    payable_at = fields.DatetimeField(null=True)
    batch = fields.ForeignKeyField(
        "referrals.SettlementBatch", related_name="rewards", on_delete=fields.RESTRICT, null=True
    )
    paid_at = fields.DatetimeField(null=True)
    # A refund after payout: set once, with a negative adjustment (cash) or a ledger reversal (points).
    reversed_at = fields.DatetimeField(null=True)
    cancel_reason = fields.CharField(max_length=255, default="")
    decided_by_id = fields.BigIntField(null=True)
    decision_reason = fields.CharField(max_length=255, default="")
    created_at = fields.DatetimeField()

    class Meta:
        table = "referral_reward"
        unique_together = (("referee_id", "level"),)
        indexes = (("status", "hold_until"), ("beneficiary_id", "status"), ("status", "kind", "hold_until"))


class AdjustmentStatus(StrEnum):
    open = "open"  # waits for the next batch
    batched = "batched"
    settled = "settled"


class RewardAdjustment(Model):
    """A negative amount owed back after a paid (or batched) cash reward's consumption was refunded."""

    id = fields.BigIntField(primary_key=True)
    # One adjustment per reward: a second refund job cannot claw back twice.
    reward = fields.OneToOneField("referrals.ReferralReward", related_name="adjustment", on_delete=fields.RESTRICT)
    payee = fields.ForeignKeyField("kernel.Customer", related_name="referral_adjustments", on_delete=fields.RESTRICT)
    amount_fen = fields.BigIntField()
    reason = fields.CharField(max_length=255)
    status = fields.CharEnumField(AdjustmentStatus, max_length=16, default=AdjustmentStatus.open)
    batch = fields.ForeignKeyField(
        "referrals.SettlementBatch", related_name="adjustments", on_delete=fields.RESTRICT, null=True
    )
    created_at = fields.DatetimeField()
    settled_at = fields.DatetimeField(null=True)

    class Meta:
        table = "referral_reward_adjustment"
        indexes = (("status", "created_at"),)


class StaffPayoutStatus(StrEnum):
    payable = "payable"
    batched = "batched"
    paid = "paid"


class StaffPayout(Model):
    """Money owed to a staff member (员工推荐: a share of what the customers they brought spent), handed over
    by the CRM room once its hold ended, and settled in the same batches as customers' rewards."""

    id = fields.BigIntField(primary_key=True)
    staff = fields.ForeignKeyField("kernel.StaffMember", related_name=False, on_delete=fields.RESTRICT)
    # The caller's idempotency key (e.g. "crm_staff_reward:<id>"): a payout is handed over once.
    ref = fields.CharField(max_length=64, unique=True)
    amount_fen = fields.BigIntField()
    note = fields.CharField(max_length=255, default="")
    status = fields.CharEnumField(StaffPayoutStatus, max_length=16, default=StaffPayoutStatus.payable)
    batch = fields.ForeignKeyField(
        "referrals.SettlementBatch", related_name="staff_payouts", on_delete=fields.RESTRICT, null=True
    )
    created_at = fields.DatetimeField()
    paid_at = fields.DatetimeField(null=True)

    class Meta:
        table = "referral_staff_payout"
        indexes = (("status", "created_at"),)


class BatchStatus(StrEnum):
    draft = "draft"  # created, under review
    approved = "approved"  # approved by a second finance user (maker-checker)
    paid = "paid"
    cancelled = "cancelled"  # its items went back to payable / open


class SettlementBatch(Model):
    """A settlement batch (结算批次): payable cash rewards and open adjustments, paid together."""

    id = fields.BigIntField(primary_key=True)
    status = fields.CharEnumField(BatchStatus, max_length=16, default=BatchStatus.draft)
    up_to = fields.DateField()
    total_fen = fields.BigIntField(default=0)
    rewards_fen = fields.BigIntField(default=0)
    adjustments_fen = fields.BigIntField(default=0)
    payee_count = fields.IntField(default=0)
    reward_count = fields.IntField(default=0)
    adjustment_count = fields.IntField(default=0)
    created_by = fields.ForeignKeyField("kernel.StaffMember", related_name=False, on_delete=fields.RESTRICT)
    approved_by = fields.ForeignKeyField("kernel.StaffMember", related_name=False, on_delete=fields.RESTRICT, null=True)
    paid_by = fields.ForeignKeyField("kernel.StaffMember", related_name=False, on_delete=fields.RESTRICT, null=True)
    cancelled_by = fields.ForeignKeyField(
        "kernel.StaffMember", related_name=False, on_delete=fields.RESTRICT, null=True
    )
    external_ref = fields.CharField(max_length=64, null=True, unique=True)
    note = fields.CharField(max_length=255, default="")
    created_at = fields.DatetimeField()
    approved_at = fields.DatetimeField(null=True)
    paid_at = fields.DatetimeField(null=True)
    cancelled_at = fields.DatetimeField(null=True)

    class Meta:
        table = "referral_settlement_batch"
        indexes = (("status", "id"),)


class MonthlyRewardTally(Model):
    """Rewards counted against a beneficiary's monthly cap, raised by a conditional update (never read-then-write)."""

    id = fields.BigIntField(primary_key=True)
    beneficiary = fields.ForeignKeyField("kernel.Customer", related_name=False, on_delete=fields.RESTRICT)
    month = fields.CharField(max_length=7)
    reward_count = fields.IntField(default=0)
    reward_fen = fields.BigIntField(default=0)

    class Meta:
        table = "referral_monthly_tally"
        unique_together = (("beneficiary_id", "month"),)


class RefundedConsumption(Model):
    """Consumptions refunded, as reported by the points room: a late "recorded" job must not reward them."""

    consumption_id = fields.BigIntField(primary_key=True, generated=False)
    customer_id = fields.BigIntField()
    refunded_fen = fields.BigIntField()
    recorded_at = fields.DatetimeField()

    class Meta:
        table = "referral_refunded_consumption"
