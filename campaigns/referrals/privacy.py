"""The referral room's part of a customer's data export and erasure (PIPL, see kernel/privacy.py)."""

from __future__ import annotations

from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from campaigns.referrals.models import (
    BindingAttempt,
    MonthlyRewardTally,
    ReferralBinding,
    RefundedConsumption,
    ReferralReward,
    RewardAdjustment,
    RewardStatus,
)
from campaigns.referrals.views import friends_of
from kernel.privacy import rows_of

TABLES = [
    (ReferralBinding, "referee_id", "referred_by"),
    (ReferralBinding, "referrer_id", "friends"),
    (ReferralReward, "beneficiary_id", "rewards"),
    (ReferralReward, "referee_id", "rewards_for_my_referral"),
    (BindingAttempt, "referee_id", "codes_used"),
    (BindingAttempt, "referrer_id", "my_code_tried"),
    (RewardAdjustment, "payee_id", "adjustments"),
    (MonthlyRewardTally, "beneficiary_id", "monthly_tallies"),
    (RefundedConsumption, "customer_id", "refunded_consumptions"),
]


async def export(conn: BaseDBAsyncClient, customer_id: int) -> dict[str, Any]:
    binding = await ReferralBinding.get_or_none(referee_id=customer_id, using_db=conn)
    _, friends = await friends_of(conn, customer_id, limit=10_000, offset=0)
    return {
        # Who referred the customer is shown by the code they used, not by the other person's identity.
        "referred_by": None if binding is None else {
            "code": binding.code, "status": binding.status.value, "bound_at": binding.bound_at.isoformat(),
        },
        "friends": [
            {"masked_name": f.masked_name, "bound_at": f.bound_at.isoformat(), "status": f.status,
             "reward_status": f.reward_status}
            for f in friends
        ],
        "rewards": await rows_of(
            ReferralReward.filter(beneficiary_id=customer_id).using_db(conn),
            "level", "kind", "amount_fen", "points", "status", "created_at", "paid_at", "reversed_at",
        ),
        # Rewards others earn because this customer was referred: amounts and states, not who earns them.
        "rewards_for_my_referral": await rows_of(
            ReferralReward.filter(referee_id=customer_id).using_db(conn), "level", "kind", "status", "created_at"
        ),
        "codes_used": await rows_of(
            BindingAttempt.filter(referee_id=customer_id).using_db(conn), "code", "outcome", "reason", "created_at"
        ),
        # Logins that presented this customer's code: outcomes only, not who tried.
        "my_code_tried": await rows_of(
            BindingAttempt.filter(referrer_id=customer_id).using_db(conn), "outcome", "reason", "created_at"
        ),
        "adjustments": await rows_of(
            RewardAdjustment.filter(payee_id=customer_id).using_db(conn),
            "amount_fen", "reason", "status", "created_at", "settled_at",
        ),
        "monthly_tallies": await rows_of(
            MonthlyRewardTally.filter(beneficiary_id=customer_id).using_db(conn), "month", "reward_count", "reward_fen"
        ),
        "refunded_consumptions": [
            {"consumption_id": row["consumption_id"], "refunded_fen": row["refunded_fen"],
             "recorded_at": row["recorded_at"].isoformat()}
            for row in await RefundedConsumption.filter(customer_id=customer_id).using_db(conn).order_by(
                "consumption_id").values("consumption_id", "refunded_fen", "recorded_at")
        ],
    }


async def erase(conn: BaseDBAsyncClient, customer_id: int) -> None:
    """Rewards not yet paid out are voided: nobody identifiable is left to pay them to.

    Bindings, paid rewards and adjustments stay (ids and amounts only) so batches still add up.
    """
    await ReferralReward.filter(
        beneficiary_id=customer_id, status__in=[RewardStatus.pending, RewardStatus.held, RewardStatus.payable]
    ).using_db(conn).update(status=RewardStatus.voided, decision_reason="customer erased their account")
