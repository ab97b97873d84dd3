"""Rewards with real arq workers in burst mode: qualifying, the hold, refunds, races, levels, caps, signals."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta

import pymysql
import pytest
from arq import Retry
from arq.jobs import Job
from tortoise.exceptions import OperationalError

from campaigns.referrals import payouts, tasks
from campaigns.referrals.models import (
    AdjustmentStatus,
    BindingStatus,
    ReferralBinding,
    ReferralReward,
    RewardAdjustment,
    RewardKind,
    RewardStatus,
)
from kernel import clock
from kernel.db import transaction
from kernel.identity.models import AuditLogEntry, Customer
from kernel.settings import get_settings
from points_mall.models import PointsLedgerEntry, QualifiedReferral, Voucher
from points_mall.service import record_consumption, refund_consumption
from tests.campaigns.referrals.factories import (
    consumption_recorded,
    consumption_refunded,
    local_date_of,
    login,
    make_program,
    release_at,
    release_due,
)
from tests.factories import customer_headers, make_staff, run_worker, staff_headers
from tests.points_mall.factories import balance_of


async def pay(customer: Customer, amount_fen: int) -> tuple[int, str]:
    """A paid consumption through the points room (which enqueues referrals.consumption_recorded)."""
    ref = "fd-" + secrets.token_hex(6)
    async with transaction() as conn:
        consumption = await record_consumption(
            conn, customer_id=customer.id, amount_fen=amount_fen, source="front_desk", external_ref=ref
        )
    return consumption.id, ref


async def refund(ref: str, refunded_fen: int) -> None:
    async with transaction() as conn:
        await refund_consumption(conn, external_ref=ref, refunded_fen=refunded_fen, ref="rf-" + secrets.token_hex(6))


async def reward_of(referee: Customer, level: int = 1) -> ReferralReward:
    return await ReferralReward.get(referee_id=referee.id, level=level)


async def test_full_chain_from_login_with_a_code_to_paid_settlement(client, redis):
    program = await make_program(hold_days=7, referrer_reward_value=8800, min_amount_fen=50000)
    referrer = await login(client)
    friend = await login(client, referral_code=referrer.referral_code)

    consumption_id, _ = await pay(friend, 128000)
    worker = await run_worker(redis)
    assert worker.jobs_failed == 0
    binding = await ReferralBinding.get(referee_id=friend.id)
    assert binding.status == BindingStatus.qualified and binding.qualifying_consumption_id == consumption_id
    reward = await reward_of(friend)
    assert (reward.beneficiary_id, reward.amount_fen, reward.status) == (referrer.id, 8800, RewardStatus.pending)
    assert await QualifiedReferral.filter(referrer_id=referrer.id).count() == 1  # feeds tiers

    view = (await client.get("/app/referrals", headers=customer_headers(referrer))).json()
    assert view["totals"]["pending_fen"] == 8800
    assert view["items"][0]["status"] == "qualified" and view["items"][0]["reward_status"] == "pending"

    # The hold ends (injected time), the release job makes the reward payable.
    await release_at(redis, reward.hold_until + timedelta(minutes=1))
    assert (await reward_of(friend)).status == RewardStatus.payable

    maker, checker = await make_staff("finance"), await make_staff("finance")
    created = await client.post(
        "/admin/settlements", json={"up_to": local_date_of(reward.hold_until)}, headers=staff_headers(maker)
    )
    assert created.status_code == 201, created.text
    batch_id = created.json()["id"]
    reward = await reward_of(friend)
    assert reward.status == RewardStatus.batched and reward.batch_id == batch_id
    review = (await client.get(f"/admin/settlements/{batch_id}", headers=staff_headers(maker))).json()
    line = next(x for x in review["lines"] if x["payee_id"] == referrer.id)
    assert line["net_fen"] == 8800
    approved = await client.post(f"/admin/settlements/{batch_id}/approve", headers=staff_headers(checker))
    assert approved.status_code == 200, approved.text
    export = await client.get(f"/admin/settlements/{batch_id}/export", headers=staff_headers(checker))
    assert export.status_code == 200 and str(referrer.id) in export.text
    paid = await client.post(
        f"/admin/settlements/{batch_id}/mark-paid", json={"external_ref": "BANK-" + secrets.token_hex(4)},
        headers=staff_headers(checker),
    )
    assert paid.status_code == 200 and paid.json()["status"] == "paid", paid.text
    reward = await reward_of(friend)
    assert reward.status == RewardStatus.paid and reward.paid_at is not None
    view = (await client.get("/app/referrals", headers=customer_headers(referrer))).json()
    assert view["totals"]["paid_fen"] == 8800 and view["items"][0]["reward_status"] == "paid"
    actions = set(
        await AuditLogEntry.filter(target_type="settlement_batch", target_id=str(batch_id)).values_list(
            "action", flat=True
        )
    )
    assert actions == {"settlement.create", "settlement.approve", "settlement.export", "settlement.mark_paid"}
    assert program.id == reward.program_id


async def test_hold_period_with_injected_time(redis, client):
    await make_program(hold_days=7)
    referrer = await login(client)
    friend = await login(client, referral_code=referrer.referral_code)
    paid_at = clock.now()
    await consumption_recorded(friend.id, 20000, occurred_at=paid_at)
    await run_worker(redis)
    reward = await reward_of(friend)
    assert reward.hold_until == paid_at + timedelta(days=7)

    clock.set_now(paid_at + timedelta(days=7) - timedelta(seconds=1))
    await release_due(redis)
    await run_worker(redis)
    assert (await reward_of(friend)).status == RewardStatus.pending

    clock.set_now(paid_at + timedelta(days=7))
    await release_due(redis)
    await run_worker(redis)
    reward = await reward_of(friend)
    assert reward.status == RewardStatus.payable and reward.payable_at == paid_at + timedelta(days=7)


async def test_refund_during_the_hold_cancels_the_reward(client, redis):
    await make_program(welcome_reward_type="points", welcome_points=300)
    referrer = await login(client)
    friend = await login(client, referral_code=referrer.referral_code)
    _, ref = await pay(friend, 60000)
    await run_worker(redis)
    assert (await reward_of(friend)).status == RewardStatus.pending
    welcome_balance = await balance_of(friend.id)

    await refund(ref, 60000)
    assert (await run_worker(redis)).jobs_failed == 0
    reward = await reward_of(friend)
    assert reward.status == RewardStatus.cancelled and "refunded" in reward.cancel_reason
    # The welcome points go back too.
    welcome = await reward_of(friend, level=0)
    assert welcome.reversed_at is not None
    assert await balance_of(friend.id) == welcome_balance - 300
    # Past the hold nothing becomes payable.
    clock.set_now(reward.hold_until + timedelta(days=1))
    await release_due(redis)
    await run_worker(redis)
    assert (await reward_of(friend)).status == RewardStatus.cancelled
    assert not await RewardAdjustment.filter(reward_id=reward.id).exists()


async def test_refund_after_payout_is_a_negative_adjustment_in_the_next_batch(client, redis):
    await make_program(referrer_reward_value=5000)
    referrer = await login(client)
    friend = await login(client, referral_code=referrer.referral_code)
    second_friend = await login(client, referral_code=referrer.referral_code)
    consumption_id, ref = await pay(friend, 40000)
    await run_worker(redis)
    reward = await reward_of(friend)

    await release_at(redis, reward.hold_until + timedelta(minutes=1))
    maker, checker = await make_staff("finance"), await make_staff("finance")
    batch = (await client.post("/admin/settlements", json={"up_to": local_date_of(reward.hold_until)},
                               headers=staff_headers(maker))).json()
    await client.post(f"/admin/settlements/{batch['id']}/approve", headers=staff_headers(checker))
    await client.post(f"/admin/settlements/{batch['id']}/mark-paid", json={"external_ref": "P-" + secrets.token_hex(4)},
                      headers=staff_headers(checker))
    assert (await reward_of(friend)).status == RewardStatus.paid

    # The friend refunds after the payout: the reward stays paid, the money is clawed back later.
    await refund(ref, 40000)
    await consumption_refunded(consumption_id, friend.id, 40000)  # the job delivered twice
    assert (await run_worker(redis)).jobs_failed == 0
    reward = await reward_of(friend)
    assert reward.status == RewardStatus.paid and reward.reversed_at is not None
    adjustments = await RewardAdjustment.filter(reward_id=reward.id)
    assert [(a.amount_fen, a.status) for a in adjustments] == [(-5000, AdjustmentStatus.open)]

    # The next batch carries the adjustment against the referrer's next reward.
    await pay(second_friend, 70000)
    await run_worker(redis)
    second = await reward_of(second_friend)
    await release_at(redis, second.hold_until + timedelta(minutes=1))
    next_batch = (await client.post("/admin/settlements", json={"up_to": local_date_of(second.hold_until)},
                                    headers=staff_headers(maker))).json()
    review = (await client.get(f"/admin/settlements/{next_batch['id']}", headers=staff_headers(maker))).json()
    line = next(x for x in review["lines"] if x["payee_id"] == referrer.id)
    assert (line["rewards_fen"], line["adjustments_fen"], line["net_fen"]) == (5000, -5000, 0)
    adjustment = await RewardAdjustment.get(reward_id=reward.id)
    assert adjustment.batch_id == next_batch["id"] and adjustment.status == AdjustmentStatus.batched
    view = (await client.get("/app/referrals", headers=customer_headers(referrer))).json()
    assert view["totals"]["clawed_back_fen"] == 5000


async def test_a_refund_processed_before_the_consumption_event_prevents_the_reward(client, redis):
    await make_program()
    referrer = await login(client)
    friend = await login(client, referral_code=referrer.referral_code)
    consumption_id = 900_000_000_000 + secrets.randbelow(10**9)
    # The jobs arrive out of order (two workers, one slower).
    await consumption_refunded(consumption_id, friend.id, 30000)
    await run_worker(redis)
    await consumption_recorded(friend.id, 30000, consumption_id=consumption_id)
    await run_worker(redis)
    assert not await ReferralReward.filter(referee_id=friend.id).exists()
    assert (await ReferralBinding.get(referee_id=friend.id)).status == BindingStatus.bound


async def test_release_job_run_twice_and_raced_by_two_workers_moves_each_reward_once(client, redis):
    await make_program(referrer_reward_type="points", referrer_reward_value=500)
    cash_program_friends, points_friends = [], []
    referrer = await login(client)
    for _ in range(3):
        friend = await login(client, referral_code=referrer.referral_code)
        await consumption_recorded(friend.id, 20000)
        points_friends.append(friend)
    await make_program(referrer_reward_value=3000)
    for _ in range(3):
        friend = await login(client, referral_code=referrer.referral_code)
        await consumption_recorded(friend.id, 20000)
        cash_program_friends.append(friend)
    await run_worker(redis)
    rewards = [await reward_of(f) for f in points_friends + cash_program_friends]
    assert all(r.status == RewardStatus.pending for r in rewards)
    balance_before = await balance_of(referrer.id)

    clock.set_now(max(r.hold_until for r in rewards) + timedelta(minutes=1))
    due = await ReferralReward.filter(status=RewardStatus.pending, hold_until__lte=clock.now()).count()
    queue = get_settings().redis.queue_name
    job_ids = [f"race-{secrets.token_hex(4)}-{i}" for i in range(4)]
    for job_id in job_ids:  # the cron tick and a manual run, twice over
        await redis.enqueue_job("referrals.release_due_rewards", _job_id=job_id, _queue_name=queue)
    workers = await asyncio.gather(run_worker(redis), run_worker(redis))
    assert sum(w.jobs_complete for w in workers) == len(job_ids)
    assert sum(w.jobs_failed for w in workers) == 0
    moved = [await Job(job_id, redis, _queue_name=queue).result(timeout=5) for job_id in job_ids]
    assert sum(moved) == due  # each due reward was moved by exactly one run

    for friend in cash_program_friends:
        assert (await reward_of(friend)).status == RewardStatus.payable
    for friend in points_friends:
        reward = await reward_of(friend)
        assert reward.status == RewardStatus.paid
        assert await PointsLedgerEntry.filter(ref=f"referral_reward:{reward.id}").count() == 1
    assert await balance_of(referrer.id) == balance_before + 3 * 500


async def test_release_job_runs_a_deadlocked_chunk_again_then_hands_a_lasting_deadlock_to_arq(client, monkeypatch):
    real_chunk = payouts.release_due_chunk
    calls: list[RewardKind] = []

    def deadlock() -> OperationalError:
        try:
            raise pymysql.err.OperationalError(1213, "Deadlock found when trying to get lock")
        except pymysql.err.OperationalError as exc:
            return OperationalError(exc)

    async def deadlocked_once(conn, *, kind, limit):
        calls.append(kind)
        if len(calls) == 1:
            raise deadlock()
        return await real_chunk(conn, kind=kind, limit=limit)

    monkeypatch.setattr(payouts, "release_due_chunk", deadlocked_once)
    await tasks.release_due_rewards({"job_try": 1})
    assert calls[:2] == [RewardKind.cash, RewardKind.cash] and calls[-1] == RewardKind.points

    async def always_deadlocked(conn, *, kind, limit):
        raise deadlock()

    monkeypatch.setattr(payouts, "release_due_chunk", always_deadlocked)
    with pytest.raises(Retry):  # not a failed job: arq runs it again (the cron would, ten minutes later)
        await tasks.release_due_rewards({"job_try": 1})


async def test_one_reward_per_level_whatever_the_number_of_events(client, redis):
    await make_program(min_amount_fen=10000)
    referrer = await login(client)
    friend = await login(client, referral_code=referrer.referral_code)
    consumption_id = await consumption_recorded(friend.id, 5000)  # below the minimum: no reward
    await run_worker(redis)
    assert not await ReferralReward.filter(referee_id=friend.id).exists()

    first = await consumption_recorded(friend.id, 20000)
    await consumption_recorded(friend.id, 20000, consumption_id=first)  # the same event delivered again
    second = await consumption_recorded(friend.id, 90000)  # a second purchase
    worker = await run_worker(redis)
    assert worker.jobs_failed == 0
    rewards = await ReferralReward.filter(referee_id=friend.id)
    # The worker runs these jobs concurrently, so either qualifying purchase may be the one that counts;
    # what may never happen is a second level-1 reward, or the below-minimum purchase qualifying.
    assert [r.level for r in rewards] == [1]
    assert rewards[0].qualifying_consumption_id in {first, second}
    assert consumption_id not in {first, second}


async def test_consumption_outside_the_qualifying_window_does_not_qualify(client, redis):
    program = await make_program(qualify_within_days=14, binding_valid_days=30)
    referrer = await login(client)
    friend = await login(client, referral_code=referrer.referral_code)
    binding = await ReferralBinding.get(referee_id=friend.id)
    await consumption_recorded(friend.id, 50000, occurred_at=binding.bound_at + timedelta(days=15))
    await run_worker(redis)
    assert not await ReferralReward.filter(referee_id=friend.id).exists()
    assert program.qualify_within_days == 14


async def test_second_level_rewards_and_never_a_third_level(client, redis):
    await make_program(
        referrer_reward_type="percent", referrer_reward_value=1000,  # 10%
        second_level_reward_type="fixed_fen", second_level_reward_value=1500,
    )
    a = await login(client)
    b = await login(client, referral_code=a.referral_code)
    c = await login(client, referral_code=b.referral_code)
    d = await login(client, referral_code=c.referral_code)
    await consumption_recorded(d.id, 123456)
    assert (await run_worker(redis)).jobs_failed == 0

    rewards = {r.level: r for r in await ReferralReward.filter(referee_id=d.id)}
    assert set(rewards) == {1, 2}
    assert (rewards[1].beneficiary_id, rewards[1].amount_fen) == (c.id, 12345)  # 10% rounded down to the fen
    assert (rewards[2].beneficiary_id, rewards[2].amount_fen) == (b.id, 1500)
    # A (three levels up) gets nothing, from any event.
    assert not await ReferralReward.filter(beneficiary_id=a.id, referee_id=d.id).exists()
    totals = (await client.get("/app/referrals", headers=customer_headers(b))).json()["totals"]
    assert totals["pending_fen"] == 1500


async def test_no_second_level_unless_the_program_has_one(client, redis):
    await make_program()
    a = await login(client)
    b = await login(client, referral_code=a.referral_code)
    c = await login(client, referral_code=b.referral_code)
    await consumption_recorded(c.id, 30000)
    await run_worker(redis)
    assert [r.level for r in await ReferralReward.filter(referee_id=c.id)] == [1]


async def test_welcome_voucher_is_issued_and_cancelled_on_refund(client, redis):
    await make_program(welcome_reward_type="voucher", welcome_voucher_title="Free skin analysis")
    referrer = await login(client)
    friend = await login(client, referral_code=referrer.referral_code)
    _, ref = await pay(friend, 30000)
    await run_worker(redis)
    welcome = await reward_of(friend, level=0)
    assert welcome.kind == "voucher" and welcome.status == RewardStatus.paid
    binding = await ReferralBinding.get(referee_id=friend.id)
    voucher = await Voucher.get(source_type="referral_welcome", source_id=str(binding.id))
    assert voucher.customer_id == friend.id and voucher.title == "Free skin analysis"

    await refund(ref, 30000)
    await run_worker(redis)
    assert (await Voucher.get(id=voucher.id)).status == "cancelled"


async def test_points_reward_goes_through_the_ledger_and_is_reversed_after_a_late_refund(client, redis):
    await make_program(referrer_reward_type="points", referrer_reward_value=800)
    referrer = await login(client)
    friend = await login(client, referral_code=referrer.referral_code)
    _, ref = await pay(friend, 30000)
    await run_worker(redis)
    reward = await reward_of(friend)
    assert reward.kind == "points" and reward.status == RewardStatus.pending
    before = await balance_of(referrer.id)
    clock.set_now(reward.hold_until + timedelta(minutes=1))
    await release_due(redis)
    await run_worker(redis)
    assert await balance_of(referrer.id) == before + 800

    await refund(ref, 30000)
    await run_worker(redis)
    assert await balance_of(referrer.id) == before
    assert (await reward_of(friend)).reversed_at is not None


async def test_monthly_cap_holds_extra_rewards_and_staff_approve_or_void_them(client, redis):
    await make_program(monthly_cap_count=2)
    referrer = await login(client)
    friends = [await login(client, referral_code=referrer.referral_code) for _ in range(4)]
    for friend in friends:
        await consumption_recorded(friend.id, 20000)
    assert (await run_worker(redis)).jobs_failed == 0
    rewards = [await reward_of(f) for f in friends]
    statuses = sorted(r.status for r in rewards)
    assert statuses == ["held", "held", "pending", "pending"]  # over the cap: held, not dropped
    held = [r for r in rewards if r.status == RewardStatus.held]
    assert all(r.hold_reason == "over_cap" for r in held)

    staff = await make_staff("campaign")
    queue = await client.get("/admin/referrals/rewards", params={"status": "held", "beneficiary_id": referrer.id},
                             headers=staff_headers(staff))
    assert {r["id"] for r in queue.json()["items"]} == {r.id for r in held}
    approve = await client.post(f"/admin/referrals/rewards/{held[0].id}/approve",
                                json={"reason": "VIP referrer, agreed with manager"}, headers=staff_headers(staff))
    assert approve.status_code == 200 and approve.json()["status"] == "pending", approve.text
    void = await client.post(f"/admin/referrals/rewards/{held[1].id}/void", json={"reason": "duplicate person"},
                             headers=staff_headers(staff))
    assert void.status_code == 200 and void.json()["status"] == "voided"
    again = await client.post(f"/admin/referrals/rewards/{held[1].id}/approve", json={"reason": "oops"},
                              headers=staff_headers(staff))
    assert again.status_code == 409 and again.json()["code"] == "referral_reward_not_held"
    no_reason = await client.post(f"/admin/referrals/rewards/{held[1].id}/void", json={"reason": ""},
                                  headers=staff_headers(staff))
    assert no_reason.status_code == 400 and no_reason.json()["detail"]["field"] == "reason"
    audits = await AuditLogEntry.filter(target_type="referral_reward", staff_id=staff.id).values_list("action", "detail")
    assert ("referral_reward.void", {"reason": "duplicate person"}) in audits
    assert any(action == "referral_reward.approve" for action, _ in audits)


async def test_fraud_signals_hold_rewards_for_review(client, redis):
    await make_program(burst_window_minutes=60, burst_max_referees=3)
    busy = await login(client)
    friends = [await login(client, referral_code=busy.referral_code) for _ in range(5)]
    bindings = [await ReferralBinding.get(referee_id=f.id) for f in friends]
    assert [b.flagged for b in bindings] == [False, False, False, True, True]
    assert bindings[3].signals == ["burst"]

    # A friend who shares the referrer's phone number.
    await Customer.filter(id=busy.id).update(phone_hash="h-" + secrets.token_hex(8))
    sharer_phone = (await Customer.get(id=busy.id)).phone_hash
    await Customer.filter(id=friends[0].id).update(phone_hash=sharer_phone)

    for friend in friends:
        await consumption_recorded(friend.id, 20000)
    await run_worker(redis)
    rewards = [await reward_of(f) for f in friends]
    assert rewards[0].status == RewardStatus.held and rewards[0].signals == ["shared_phone"]
    assert [r.status for r in rewards[1:3]] == [RewardStatus.pending, RewardStatus.pending]
    assert all(r.status == RewardStatus.held and r.hold_reason == "fraud_signal" for r in rewards[3:])

    staff = await make_staff("finance")
    flagged = await client.get("/admin/referrals/bindings", params={"flagged": True, "referrer_id": busy.id},
                               headers=staff_headers(staff))
    signals = {b["referee_id"]: b["signals"] for b in flagged.json()["items"]}
    assert signals == {friends[0].id: ["shared_phone"], friends[3].id: ["burst"], friends[4].id: ["burst"]}
