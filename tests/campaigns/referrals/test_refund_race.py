"""The consumption and refund jobs of one referee running side by side (found by
tests/test_invariants_stateful.py): whichever commits first, a refunded consumption leaves no live reward."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from campaigns.referrals import payouts, rewards
from campaigns.referrals.models import ReferralReward, RewardStatus
from kernel import clock
from kernel.db import transaction
from tests.factories import blocked_on
from tests.orders.factories import run_jobs
from tests.campaigns.referrals.factories import login, make_program, next_consumption_id


@pytest.fixture(autouse=True)
async def drained(redis):
    """These tests call the jobs themselves; the jobs their steps also queued run here, so none is left behind."""
    yield
    await run_jobs(redis)



async def referee(client):
    await make_program(hold_days=7, min_amount_fen=10000)
    referrer = await login(client)
    return await login(client, referral_code=referrer.referral_code)


async def run_while_open(first, second) -> None:
    """Start `first` in a transaction, run `second` on another connection while it is open, then commit:
    `second` either waits for `first` (a shared lock) or used to finish on its own stale snapshot."""
    outside = contextvars.copy_context()
    async with transaction() as conn:
        await first(conn)
        other = asyncio.create_task(second(), context=outside)
        for _ in range(300):
            if other.done() or await blocked_on("referral_binding"):
                break
            await asyncio.sleep(0.01)
    await other


def live(rows: list[ReferralReward]) -> list[ReferralReward]:
    return [r for r in rows if r.status not in (RewardStatus.cancelled, RewardStatus.voided) and r.reversed_at is None]


async def test_refund_job_during_the_qualifying_job_reverses_what_it_created(client):
    friend = await referee(client)
    consumption_id = next_consumption_id()

    async def qualify(conn):
        created = await rewards.record_qualifying_consumption(
            conn, consumption_id=consumption_id, customer_id=friend.id, amount_fen=20000, occurred_at=clock.now())
        assert created

    async def refund():
        async with transaction() as conn:
            await payouts.record_refund(conn, consumption_id=consumption_id, customer_id=friend.id,
                                        refunded_fen=20000)

    await run_while_open(qualify, refund)
    made = await ReferralReward.filter(referee_id=friend.id)
    assert made and not live(made), [(r.level, r.status, r.reversed_at) for r in made]


async def test_qualifying_job_during_the_refund_job_creates_nothing(client):
    friend = await referee(client)
    consumption_id = next_consumption_id()

    async def refund(conn):
        await payouts.record_refund(conn, consumption_id=consumption_id, customer_id=friend.id, refunded_fen=20000)

    async def qualify():
        async with transaction() as conn:
            await rewards.record_qualifying_consumption(
                conn, consumption_id=consumption_id, customer_id=friend.id, amount_fen=20000,
                occurred_at=clock.now())

    await run_while_open(refund, qualify)
    assert not live(await ReferralReward.filter(referee_id=friend.id))
