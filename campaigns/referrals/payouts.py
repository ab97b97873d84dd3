"""After a reward exists: the hold ends (release), staff review held rewards, refunds reverse them."""

from __future__ import annotations

import structlog
from tortoise.backends.base.client import BaseDBAsyncClient

from campaigns.referrals import partners
from campaigns.referrals.errors import RewardNotFound, RewardNotHeld
from campaigns.referrals.models import (
    AdjustmentStatus,
    RefundedConsumption,
    ReferralBinding,
    ReferralReward,
    RewardAdjustment,
    RewardKind,
    RewardStatus,
)
from campaigns.referrals.rewards import credit_points_reward, give_back_cap_slot, lock_customers, points_ref
from kernel import clock

log = structlog.get_logger(__name__)

# Statuses in which a reward has not left the building: a refund simply cancels it.
_UNPAID = (RewardStatus.pending, RewardStatus.held, RewardStatus.payable)


async def release_due_chunk(conn: BaseDBAsyncClient, *, kind: RewardKind, limit: int) -> tuple[int, int]:
    """Move one chunk of pending rewards of one kind whose hold has ended: cash → payable, points → credited.

    Returns (rows looked at, rows moved). `FOR UPDATE SKIP LOCKED` lets racing workers take different
    chunks instead of queueing on the same rows (MySQL/MariaDB; SQLite has one writer anyway); the
    conditional update is what guarantees a row moves once, whatever the locking does.
    """
    now = clock.now()
    # Model rows with .only(): values_list() would silently drop the FOR UPDATE clause.
    due = await (
        ReferralReward.filter(status=RewardStatus.pending, kind=kind, hold_until__lte=now)
        .using_db(conn)
        .select_for_update(skip_locked=True)
        .only("id", "kind", "beneficiary_id", "points", "level")
        .order_by("id")
        .limit(limit)
    )
    if not due:
        return 0, 0
    if kind == RewardKind.cash:
        moved = await ReferralReward.filter(
            id__in=[r.id for r in due], status=RewardStatus.pending
        ).using_db(conn).update(status=RewardStatus.payable, payable_at=now)
        return len(due), moved
    moved = 0
    # Points accounts are locked in beneficiary order, the same order in every worker: no deadlock.
    for reward in sorted(due, key=lambda r: (r.beneficiary_id, r.id)):
        moved += await credit_points_reward(conn, reward, now)
    return len(due), moved


async def get_reward(conn: BaseDBAsyncClient, reward_id: int) -> ReferralReward:
    reward = await ReferralReward.get_or_none(id=reward_id, using_db=conn)
    if reward is None:
        raise RewardNotFound(reward_id=reward_id)
    return reward


async def approve_held(conn: BaseDBAsyncClient, reward_id: int, *, staff_id: int, reason: str) -> ReferralReward:
    """Staff release a held reward: it goes on as if never held (pending, or further if its hold ended)."""
    reward = await get_reward(conn, reward_id)
    updated = await ReferralReward.filter(id=reward_id, status=RewardStatus.held).using_db(conn).update(
        status=RewardStatus.pending, decided_by_id=staff_id, decision_reason=reason
    )
    if not updated:
        raise RewardNotHeld(status=reward.status.value)
    reward = await get_reward(conn, reward_id)
    now = clock.now()
    if reward.hold_until <= now:
        if reward.kind == RewardKind.points:
            await credit_points_reward(conn, reward, now)
        else:
            await ReferralReward.filter(id=reward_id, status=RewardStatus.pending).using_db(conn).update(
                status=RewardStatus.payable, payable_at=now
            )
        reward = await get_reward(conn, reward_id)
    return reward


async def void_held(conn: BaseDBAsyncClient, reward_id: int, *, staff_id: int, reason: str) -> ReferralReward:
    reward = await get_reward(conn, reward_id)
    updated = await ReferralReward.filter(id=reward_id, status=RewardStatus.held).using_db(conn).update(
        status=RewardStatus.voided, decided_by_id=staff_id, decision_reason=reason
    )
    if not updated:
        raise RewardNotHeld(status=reward.status.value)
    return await get_reward(conn, reward_id)


async def _reverse_paid(conn: BaseDBAsyncClient, reward: ReferralReward, reason: str) -> bool:
    """Reverse a reward that already left: points back through the ledger, cash as a negative
    adjustment for the next batch, the welcome voucher cancelled. Once per reward."""
    now = clock.now()
    marked = await ReferralReward.filter(id=reward.id, reversed_at=None).using_db(conn).update(
        reversed_at=now, cancel_reason=reason
    )
    if not marked:
        return False
    if reward.kind == RewardKind.points:
        await partners.reverse_points(
            conn, original_ref=points_ref(reward.id), ref=points_ref(reward.id) + ":reversal", reason=reason
        )
    elif reward.kind == RewardKind.voucher:
        await partners.cancel_welcome_voucher(conn, binding_id=reward.binding_id, reason=reason)
    else:
        await RewardAdjustment.create(
            reward_id=reward.id,
            payee_id=reward.beneficiary_id,
            amount_fen=-reward.amount_fen,
            reason=reason,
            status=AdjustmentStatus.open,
            created_at=now,
            using_db=conn,
        )
    return True


async def record_refund(
    conn: BaseDBAsyncClient, *, consumption_id: int, customer_id: int, refunded_fen: int
) -> list[int]:
    """The job "referrals.consumption_refunded": a refund of the qualifying consumption reverses its rewards.

    Before payout the reward is cancelled; after payout (or once it sits in a batch) the money is
    clawed back by a negative adjustment carried into the next batch. Returns the reward ids touched.
    """
    # First, as in rewards.record_qualifying_consumption: a qualifying job running meanwhile has committed.
    await ReferralBinding.filter(referee_id=customer_id).using_db(conn).select_for_update().first()
    await RefundedConsumption.bulk_create(
        [RefundedConsumption(consumption_id=consumption_id, customer_id=customer_id, refunded_fen=refunded_fen,
                             recorded_at=clock.now())],
        ignore_conflicts=True,
        using_db=conn,
    )
    rewards = await ReferralReward.filter(
        referee_id=customer_id, qualifying_consumption_id=consumption_id
    ).using_db(conn).order_by("level")
    reason = f"qualifying consumption {consumption_id} refunded"
    if rewards:
        await lock_customers(conn, {r.beneficiary_id for r in rewards} | {customer_id})
    touched: list[int] = []
    for reward in rewards:
        if reward.status in _UNPAID:
            cancelled = await ReferralReward.filter(id=reward.id, status__in=list(_UNPAID)).using_db(conn).update(
                status=RewardStatus.cancelled, cancel_reason=reason
            )
            if cancelled:
                await give_back_cap_slot(conn, reward)
                touched.append(reward.id)
                continue
            reward = await ReferralReward.get(id=reward.id, using_db=conn)  # moved on meanwhile
        if reward.status in (RewardStatus.batched, RewardStatus.paid) and await _reverse_paid(conn, reward, reason):
            touched.append(reward.id)
    if touched:
        log.info("referrals.refund_reversed", consumption_id=consumption_id, rewards=touched)
    return touched
