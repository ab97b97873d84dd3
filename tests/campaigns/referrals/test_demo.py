"""The demo data: an active program and Alice with a friend in every state, loaded twice without change."""

from __future__ import annotations

from campaigns.referrals import demo
from campaigns.referrals.models import BindingAttempt, ReferralBinding, ReferralProgram, ReferralReward
from kernel import demo as kernel_demo
from kernel.db import transaction
from kernel.demo import sandbox_openid
from kernel.identity.models import Customer


async def test_demo_has_a_friend_in_every_state_and_loads_idempotently(client):
    async with transaction() as conn:
        await kernel_demo.load(conn)
    for _ in range(2):
        async with transaction() as conn:
            await demo.load(conn)
    program = await ReferralProgram.get(name=demo.PROGRAM_NAME)
    assert program.is_active
    alice = await Customer.get(openid=sandbox_openid("alice"))
    states = {}
    for state in demo.FRIENDS:
        friend = await Customer.get(openid=sandbox_openid(f"friend-{state}"))
        binding = await ReferralBinding.get(referee_id=friend.id)
        assert binding.referrer_id == alice.id
        reward = await ReferralReward.get_or_none(referee_id=friend.id, level=1)
        states[state] = reward.status.value if reward else binding.status.value
    assert states == {
        "paid": "paid", "cancelled": "cancelled", "expired": "bound", "batched": "batched",
        "payable": "payable", "held": "held", "pending": "pending", "invited": "bound",
    }
    assert await ReferralBinding.filter(referrer_id=alice.id).count() == len(demo.FRIENDS)
    reasons = set(await BindingAttempt.filter(outcome="refused").values_list("reason", flat=True))
    assert {"self_referral", "unknown_code"} <= reasons
    # Later tests bring their own program.
    await ReferralProgram.filter(id=program.id).update(is_active=False)


async def test_renaming_the_demo_program_does_not_break_the_next_start(client):
    """Staff renamed the demo program in a development database; the next start loads demo data again."""
    async with transaction() as conn:
        await kernel_demo.load(conn)
        await demo.load(conn)
    program = await ReferralProgram.get(name=demo.PROGRAM_NAME)
    await ReferralProgram.filter(id=program.id).update(name="Spring referral drive")
    try:
        async with transaction() as conn:
            await demo.load(conn)  # raised IntegrityError (the demo friends again) before
        assert not await ReferralProgram.filter(name=demo.PROGRAM_NAME).exists()
        assert await Customer.filter(openid=sandbox_openid("friend-paid")).count() == 1
    finally:
        await ReferralProgram.filter(id=program.id).update(name=demo.PROGRAM_NAME, is_active=False)
