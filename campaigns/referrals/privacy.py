"""The referral room's part of a customer's data export and erasure (PIPL, see kernel/privacy.py)."""

from __future__ import annotations

from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from campaigns.referrals.models import BindingAttempt, ReferralBinding, ReferralReward, RewardStatus
from campaigns.referrals.views import friends_of


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else getattr(value, "value", value)


async def export(conn: BaseDBAsyncClient, customer_id: int) -> dict[str, Any]:
    binding = await ReferralBinding.get_or_none(referee_id=customer_id, using_db=conn)
    _, friends = await friends_of(conn, customer_id, limit=10_000, offset=0)
    rewards = await ReferralReward.filter(beneficiary_id=customer_id).using_db(conn).order_by("id").values(
        "level", "kind", "amount_fen", "points", "status", "created_at", "paid_at", "reversed_at"
    )
    attempts = await BindingAttempt.filter(referee_id=customer_id).using_db(conn).order_by("id").values(
        "code", "outcome", "reason", "created_at"
    )
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
        "rewards": [{k: _iso(v) for k, v in row.items()} for row in rewards],
        "codes_used": [{k: _iso(v) for k, v in row.items()} for row in attempts],
    }


async def erase(conn: BaseDBAsyncClient, customer_id: int) -> None:
    """Rewards not yet paid out are voided: nobody identifiable is left to pay them to.

    Bindings, paid rewards and adjustments stay (ids and amounts only) so batches still add up.
    """
    await ReferralReward.filter(
        beneficiary_id=customer_id, status__in=[RewardStatus.pending, RewardStatus.held, RewardStatus.payable]
    ).using_db(conn).update(status=RewardStatus.voided, decision_reason="customer erased their account")
