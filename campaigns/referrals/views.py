"""Read side: what a referrer sees of their friends and rewards, and the lists staff review."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.functions import Sum

from campaigns.referrals.models import (
    AdjustmentStatus,
    AttemptOutcome,
    BatchStatus,
    BindingAttempt,
    BindingStatus,
    RefusalReason,
    ReferralBinding,
    ReferralProgram,
    ReferralReward,
    RewardAdjustment,
    RewardKind,
    RewardStatus,
    SettlementBatch,
)
from kernel import clock
from kernel.identity.models import Customer


def mask_name(nickname: str) -> str:
    """Friends are shown as 林** / A**: enough to recognise, not enough to identify."""
    name = (nickname or "").strip()
    if not name:
        return "微信用户"
    return name[0] + "**"


@dataclass(frozen=True)
class Friend:
    referee_id: int
    masked_name: str
    bound_at: datetime
    status: str  # invited | expired | qualified
    reward_status: str | None
    reward_amount_fen: int
    reward_points: int


@dataclass(frozen=True)
class RewardTotals:
    pending_fen: int = 0  # in the hold period, or held for review
    payable_fen: int = 0  # waiting for (or inside) a settlement batch
    paid_fen: int = 0
    clawed_back_fen: int = 0  # refunds after payout, taken from the next batches
    pending_points: int = 0
    paid_points: int = 0


_PENDING = (RewardStatus.pending, RewardStatus.held)
_PAYABLE = (RewardStatus.payable, RewardStatus.batched)


async def reward_totals(conn: BaseDBAsyncClient, referrer_id: int) -> RewardTotals:
    rows = await (
        ReferralReward.filter(beneficiary_id=referrer_id, level__gte=1)
        .using_db(conn)
        .annotate(fen=Sum("amount_fen"), pts=Sum("points"))
        .group_by("status", "kind")
        .values("status", "kind", "fen", "pts")
    )
    totals: dict[str, int] = {}
    for row in rows:
        status, fen, pts = row["status"], int(row["fen"] or 0), int(row["pts"] or 0)
        if row["kind"] == RewardKind.points:
            key = "pending_points" if status in _PENDING else "paid_points" if status == RewardStatus.paid else None
            if key:
                totals[key] = totals.get(key, 0) + pts
            continue
        key = (
            "pending_fen" if status in _PENDING
            else "payable_fen" if status in _PAYABLE
            else "paid_fen" if status == RewardStatus.paid
            else None
        )
        if key:
            totals[key] = totals.get(key, 0) + fen
    clawed = await (
        RewardAdjustment.filter(payee_id=referrer_id, status__in=[AdjustmentStatus.open, AdjustmentStatus.batched,
                                                                 AdjustmentStatus.settled])
        .using_db(conn)
        .annotate(fen=Sum("amount_fen"))
        .values("fen")
    )
    totals["clawed_back_fen"] = -int((clawed[0]["fen"] if clawed else 0) or 0)
    return RewardTotals(**totals)


async def friends_of(
    conn: BaseDBAsyncClient, referrer_id: int, *, limit: int, offset: int
) -> tuple[int, list[Friend]]:
    query = ReferralBinding.filter(referrer_id=referrer_id).using_db(conn)
    total = await query.count()
    bindings = await query.order_by("-bound_at", "-id").offset(offset).limit(limit)
    referee_ids = [b.referee_id for b in bindings]
    names = dict(
        await Customer.filter(id__in=referee_ids).using_db(conn).values_list("id", "nickname")
    ) if referee_ids else {}
    rewards = {
        r.referee_id: r
        for r in await ReferralReward.filter(
            referee_id__in=referee_ids, beneficiary_id=referrer_id, level=1
        ).using_db(conn)
    } if referee_ids else {}
    now = clock.now()
    friends = []
    for b in bindings:
        if b.status == BindingStatus.qualified:
            status = "qualified"
        else:
            status = "expired" if b.qualify_until < now else "invited"
        reward = rewards.get(b.referee_id)
        reward_status = None
        if reward is not None:
            reward_status = "reversed" if reward.reversed_at else reward.status.value
        friends.append(
            Friend(
                referee_id=b.referee_id,
                masked_name=mask_name(names.get(b.referee_id, "")),
                bound_at=b.bound_at,
                status=status,
                reward_status=reward_status,
                reward_amount_fen=reward.amount_fen if reward else 0,
                reward_points=reward.points if reward else 0,
            )
        )
    return total, friends


async def attempts(
    conn: BaseDBAsyncClient,
    *,
    outcome: AttemptOutcome | None,
    reason: RefusalReason | None,
    referrer_id: int | None,
    limit: int,
    offset: int,
) -> tuple[int, list[BindingAttempt]]:
    query = BindingAttempt.all().using_db(conn)
    if outcome is not None:
        query = query.filter(outcome=outcome)
    if reason is not None:
        query = query.filter(reason=reason)
    if referrer_id is not None:
        query = query.filter(referrer_id=referrer_id)
    return await query.count(), await query.order_by("-id").offset(offset).limit(limit)


async def rewards(
    conn: BaseDBAsyncClient,
    *,
    status: RewardStatus | None,
    beneficiary_id: int | None,
    batch_id: int | None,
    limit: int,
    offset: int,
) -> tuple[int, list[ReferralReward]]:
    query = ReferralReward.all().using_db(conn)
    if status is not None:
        query = query.filter(status=status)
    if beneficiary_id is not None:
        query = query.filter(beneficiary_id=beneficiary_id)
    if batch_id is not None:
        query = query.filter(batch_id=batch_id)
    return await query.count(), await query.order_by("-id").offset(offset).limit(limit)


async def bindings(
    conn: BaseDBAsyncClient, *, flagged: bool | None, referrer_id: int | None, limit: int, offset: int
) -> tuple[int, list[ReferralBinding]]:
    query = ReferralBinding.all().using_db(conn)
    if flagged is not None:
        query = query.filter(flagged=flagged)
    if referrer_id is not None:
        query = query.filter(referrer_id=referrer_id)
    return await query.count(), await query.order_by("-id").offset(offset).limit(limit)


async def programs(conn: BaseDBAsyncClient, *, limit: int, offset: int) -> tuple[int, list[ReferralProgram]]:
    query = ReferralProgram.all().using_db(conn)
    return await query.count(), await query.order_by("-id").offset(offset).limit(limit)


async def batches(
    conn: BaseDBAsyncClient, *, status: BatchStatus | None, limit: int, offset: int
) -> tuple[int, list[SettlementBatch]]:
    query = SettlementBatch.all().using_db(conn)
    if status is not None:
        query = query.filter(status=status)
    return await query.count(), await query.order_by("-id").offset(offset).limit(limit)
