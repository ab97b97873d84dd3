"""Rewards: created when a friend's consumption qualifies the referral (levels, caps, signals, welcome gift).

What happens to them afterwards (the hold, staff review, refunds) is in `payouts.py`. Every transition is a conditional update on `status` (or `reversed_at`) whose row count decides
whether the side effect (points, voucher, adjustment) happens, so a job that runs twice, or two
workers racing, change things once. `unique(referee, level)` caps each referee at one reward per level.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import F

from campaigns.referrals import partners
from campaigns.referrals.binding import SIGNAL_SHARED_PHONE
from campaigns.referrals.models import (
    BindingStatus,
    MonthlyRewardTally,
    ReferralBinding,
    ReferralProgram,
    ReferralReward,
    RefundedConsumption,
    RewardKind,
    RewardStatus,
    WelcomeRewardType,
)
from campaigns.referrals.programs import reward_for
from kernel import clock
from kernel.identity.models import Customer
from kernel.identity.service import lock_customers as kernel_lock_customers

log = structlog.get_logger(__name__)

LEVEL_WELCOME = 0
LEVEL_REFERRER = 1
LEVEL_SECOND = 2
MAX_LEVEL = LEVEL_SECOND  # never more than two levels of referrers

HOLD_OVER_CAP = "over_cap"
HOLD_FRAUD = "fraud_signal"


def points_ref(reward_id: int) -> str:
    return f"referral_reward:{reward_id}"


def _month_of(instant: datetime) -> str:
    return instant.astimezone(clock.clinic_zone()).strftime("%Y-%m")


async def _take_cap_slot(
    conn: BaseDBAsyncClient, program: ReferralProgram, beneficiary_id: int, month: str, amount_fen: int
) -> bool:
    """Count a reward against the beneficiary's monthly cap; False when it would go over.

    One conditional UPDATE on the tally row: two jobs rewarding the same referrer at once cannot
    both squeeze into the last slot.
    """
    if program.monthly_cap_count is None and program.monthly_cap_fen is None:
        return False
    query = MonthlyRewardTally.filter(beneficiary_id=beneficiary_id, month=month)
    if program.monthly_cap_count is not None:
        query = query.filter(reward_count__lte=program.monthly_cap_count - 1)
    if program.monthly_cap_fen is not None and amount_fen:
        query = query.filter(reward_fen__lte=program.monthly_cap_fen - amount_fen)
    for _ in range(2):
        updated = await query.using_db(conn).update(
            reward_count=F("reward_count") + 1, reward_fen=F("reward_fen") + amount_fen
        )
        if updated:
            return True
        if await MonthlyRewardTally.filter(beneficiary_id=beneficiary_id, month=month).using_db(conn).exists():
            return False
        # The month's first reward: create the tally row (a racing job may create it first), then retry.
        await MonthlyRewardTally.bulk_create(
            [MonthlyRewardTally(beneficiary_id=beneficiary_id, month=month)], ignore_conflicts=True, using_db=conn
        )
    return False


async def give_back_cap_slot(conn: BaseDBAsyncClient, reward: ReferralReward) -> None:
    if not reward.cap_counted:
        return
    await MonthlyRewardTally.filter(
        beneficiary_id=reward.beneficiary_id, month=reward.cap_month, reward_count__gte=1
    ).using_db(conn).update(reward_count=F("reward_count") - 1, reward_fen=F("reward_fen") - reward.amount_fen)


async def lock_customers(conn: BaseDBAsyncClient, customer_ids: set[int]) -> None:
    """Lock the customers a reward touches, in id order, before anything else locks them.

    Inserting a reward takes a shared lock on its customers (foreign keys) and the points room then
    wants an exclusive one (its account lock): two jobs for the same referrer would deadlock on that
    upgrade. Taking the exclusive locks first, in one fixed order, makes them queue instead.
    """
    await kernel_lock_customers(conn, customer_ids)


async def _second_level_referrer(conn: BaseDBAsyncClient, referrer_id: int, now: datetime) -> int | None:
    """The referrer's own referrer, if the referrer's binding still counts (qualified or not expired)."""
    parent = await ReferralBinding.get_or_none(referee_id=referrer_id, using_db=conn)
    if parent is None:
        return None
    if parent.status != BindingStatus.qualified and parent.expires_at <= now:
        return None
    return parent.referrer_id


async def _create_referrer_reward(
    conn: BaseDBAsyncClient,
    *,
    program: ReferralProgram,
    binding: ReferralBinding,
    referee: Customer,
    level: int,
    beneficiary_id: int,
    amount_fen: int,
    points: int,
    consumption_id: int,
    occurred_at: datetime,
) -> ReferralReward | None:
    if level < LEVEL_REFERRER or level > MAX_LEVEL:
        raise ValueError(f"referrer rewards exist at levels 1..{MAX_LEVEL} only")
    if amount_fen <= 0 and points <= 0:
        return None  # e.g. a percentage that rounds down to nothing
    signals = list(binding.signals or [])
    beneficiary = await Customer.get(id=beneficiary_id, using_db=conn)
    if referee.phone_hash and referee.phone_hash == beneficiary.phone_hash and SIGNAL_SHARED_PHONE not in signals:
        # The phone is often bound after login, so the check is repeated here, at reward time; the binding
        # records the signal with its flag, so staff see why it was flagged.
        signals.append(SIGNAL_SHARED_PHONE)
        await ReferralBinding.filter(id=binding.id).using_db(conn).update(flagged=True, signals=signals)
    month = _month_of(occurred_at)
    hold_reason: str | None = None
    cap_counted = False
    if signals:
        hold_reason = HOLD_FRAUD
    elif program.monthly_cap_count is not None or program.monthly_cap_fen is not None:
        cap_counted = await _take_cap_slot(conn, program, beneficiary_id, month, amount_fen)
        if not cap_counted:
            hold_reason = HOLD_OVER_CAP
    return await ReferralReward.create(
        program_id=program.id,
        binding_id=binding.id,
        referee_id=referee.id,
        beneficiary_id=beneficiary_id,
        level=level,
        kind=RewardKind.points if points else RewardKind.cash,
        amount_fen=amount_fen,
        points=points,
        status=RewardStatus.held if hold_reason else RewardStatus.pending,
        hold_reason=hold_reason,
        signals=signals,
        qualifying_consumption_id=consumption_id,
        qualifying_amount_fen=binding.qualifying_amount_fen or 0,
        cap_month=month,
        cap_counted=cap_counted,
        hold_until=occurred_at + timedelta(days=program.hold_days),
        created_at=clock.now(),
        using_db=conn,
    )


async def _grant_welcome(
    conn: BaseDBAsyncClient, program: ReferralProgram, binding: ReferralBinding, consumption_id: int, occurred_at: datetime
) -> ReferralReward | None:
    """The friend's welcome gift (points or a mall voucher), given at once; a refund takes it back."""
    if program.welcome_reward_type == WelcomeRewardType.none:
        return None
    now = clock.now()
    kind = RewardKind.points if program.welcome_reward_type == WelcomeRewardType.points else RewardKind.voucher
    reward = await ReferralReward.create(
        program_id=program.id,
        binding_id=binding.id,
        referee_id=binding.referee_id,
        beneficiary_id=binding.referee_id,
        level=LEVEL_WELCOME,
        kind=kind,
        points=program.welcome_points if kind == RewardKind.points else 0,
        status=RewardStatus.paid,
        qualifying_consumption_id=consumption_id,
        qualifying_amount_fen=binding.qualifying_amount_fen or 0,
        cap_month=_month_of(occurred_at),
        hold_until=now,
        payable_at=now,
        paid_at=now,
        created_at=now,
        using_db=conn,
    )
    if kind == RewardKind.points:
        await partners.earn_points(
            conn,
            customer_id=binding.referee_id,
            points=program.welcome_points,
            ref=points_ref(reward.id),
            reason=f"Welcome gift of referral program {program.name}",
        )
    else:
        await partners.issue_welcome_voucher(
            conn,
            customer_id=binding.referee_id,
            binding_id=binding.id,
            title=program.welcome_voucher_title,
            valid_until=now + timedelta(days=program.welcome_voucher_valid_days),
        )
    return reward


async def record_qualifying_consumption(
    conn: BaseDBAsyncClient, *, consumption_id: int, customer_id: int, amount_fen: int, occurred_at: datetime
) -> list[ReferralReward]:
    """The job "referrals.consumption_recorded": qualify the customer's binding, create its rewards.

    Returns the rewards created (empty when the consumption does not qualify or was handled already).
    """
    # The referee's binding row is locked first, by this job and by the refund job (payouts.record_refund): run
    # side by side, either the refund job sees the rewards committed here or this job sees the refund.
    binding = await ReferralBinding.filter(referee_id=customer_id).using_db(conn).select_for_update().first()
    if binding is None or binding.status != BindingStatus.bound:
        return []
    if await RefundedConsumption.filter(consumption_id=consumption_id).using_db(conn).exists():
        return []  # the refund's job ran first; a refunded consumption never qualifies
    if not binding.bound_at <= occurred_at <= binding.qualify_until:
        return []
    program = await ReferralProgram.get(id=binding.program_id, using_db=conn)
    if amount_fen < program.min_amount_fen:
        return []
    now = clock.now()
    # The conditional claim makes this job idempotent: a second run (or a racing worker) finds no
    # 'bound' row and stops here; unique(referee, level) would refuse a duplicate reward anyway.
    claimed = await ReferralBinding.filter(id=binding.id, status=BindingStatus.bound).using_db(conn).update(
        status=BindingStatus.qualified,
        qualified_at=now,
        qualifying_consumption_id=consumption_id,
        qualifying_amount_fen=amount_fen,
    )
    if not claimed:
        return []
    binding.status = BindingStatus.qualified
    binding.qualifying_amount_fen = amount_fen
    grand_referrer = None
    if program.second_level_reward_type is not None:
        grand_referrer = await _second_level_referrer(conn, binding.referrer_id, now)
        if grand_referrer == customer_id:
            grand_referrer = None  # loops are refused at binding; never reward someone for themselves
    await lock_customers(conn, {customer_id, binding.referrer_id} | ({grand_referrer} if grand_referrer else set()))
    referee = await Customer.get(id=customer_id, using_db=conn)

    created: list[ReferralReward] = []
    amount, points = reward_for(program.referrer_reward_type, program.referrer_reward_value, amount_fen)
    first = await _create_referrer_reward(
        conn, program=program, binding=binding, referee=referee, level=LEVEL_REFERRER,
        beneficiary_id=binding.referrer_id, amount_fen=amount, points=points,
        consumption_id=consumption_id, occurred_at=occurred_at,
    )
    created += [first] if first else []
    if program.second_level_reward_type is not None and grand_referrer is not None:
        amount, points = reward_for(program.second_level_reward_type, program.second_level_reward_value, amount_fen)
        second = await _create_referrer_reward(
            conn, program=program, binding=binding, referee=referee, level=LEVEL_SECOND,
            beneficiary_id=grand_referrer, amount_fen=amount, points=points,
            consumption_id=consumption_id, occurred_at=occurred_at,
        )
        created += [second] if second else []
    welcome = await _grant_welcome(conn, program, binding, consumption_id, occurred_at)
    created += [welcome] if welcome else []
    await partners.record_qualified_referral(conn, referrer_id=binding.referrer_id, ref=f"referral:{binding.id}")
    log.info("referrals.qualified", binding_id=binding.id, rewards=[r.id for r in created])
    return created


async def credit_points_reward(conn: BaseDBAsyncClient, reward: ReferralReward, now: datetime) -> bool:
    credited = await ReferralReward.filter(id=reward.id, status=RewardStatus.pending).using_db(conn).update(
        status=RewardStatus.paid, payable_at=now, paid_at=now
    )
    if credited:
        await partners.earn_points(
            conn,
            customer_id=reward.beneficiary_id,
            points=reward.points,
            ref=points_ref(reward.id),
            reason=f"Referral reward (level {reward.level})",
        )
    return bool(credited)
