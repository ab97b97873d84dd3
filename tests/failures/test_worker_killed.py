"""A worker process is SIGKILLed in the middle of settling a group or releasing referral rewards; a fresh
worker process takes over. Nothing is applied twice, nothing is lost.

How the kill lands where it hurts, without patching the code under test:
- in a network call: the fake WeChat Pay accepts the refund and never answers, so the job is stuck
  after WeChat took the money out but before we recorded it;
- inside a transaction: a connection of the test holds a row lock the settling transaction needs
  half-way (after it has written), so the worker is killed with uncommitted writes.

arq re-runs a job whose worker died once `arq:in-progress:<job id>` expires (in production: the
longest job timeout + 10 s); the worker process here sets it to 4 s (tests/failures/worker_process.py)
and the tests wait for the marker to go away before starting the second worker, so the second run is
arq's own retry of the same job (same id, job_try 2), not a job the test enqueued again.
"""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

from arq.constants import job_key_prefix
from arq.jobs import Job
from tortoise.functions import Sum

from campaigns.groupbuy import groups
from campaigns.groupbuy.models import CampaignEntry, CampaignSku, EntryStatus, Group, GroupStatus
from campaigns.groupbuy.tasks import close_job_id
from orders.models import Order, OrderStatus, Refund, RefundStatus
from campaigns.referrals.models import ReferralReward, RewardKind, RewardStatus
from campaigns.referrals.rewards import points_ref
from kernel import clock
from kernel.db import transaction
from points_mall.models import PointsLedgerEntry, Voucher
from tests.orders.factories import QUEUE, run_jobs
from tests.campaigns.groupbuy_factories import make_campaign, pay
from tests.campaigns.referrals.factories import consumption_recorded, login, make_program
from tests.factories import make_customer, run_worker
from tests.failures.support import (
    RowLock,
    blocked_statements,
    connection_gone,
    jobs_in_progress,
    wait_for,
)
from tests.points_mall.factories import assert_ledger_consistent


async def paid_group(redis, gateway, *, members: int = 2, **campaign_fields):
    """A bestie-card group whose leader and members have paid, their jobs done, its deadline just passed."""
    campaign, sku = await make_campaign(group_size=3, stock=10, **campaign_fields)
    leader = await make_customer()
    async with transaction() as conn:
        group, order, _ = await groups.open_group(conn, leader.id, campaign.id, sku.id)
    await pay(order, gateway)
    orders = [order]
    for _ in range(members - 1):
        friend = await make_customer()
        async with transaction() as conn:
            _, order, _ = await groups.join_group(conn, friend.id, group.id)
        await pay(order, gateway)
        orders.append(order)
    # Paid-order side effects, consumption events: done now, so the killed worker runs only the settlement.
    await run_jobs(redis, ctx={"payment_gateway": gateway})
    await Group.filter(id=group.id).update(deadline=clock.now() - timedelta(seconds=1))
    return group, leader, [await Order.get(id=o.id) for o in orders], sku


async def schedule_deadline(redis, group_id: int) -> None:
    """The group's deadline job under its deterministic id (run_jobs dropped the future one it had)."""
    await redis.delete(job_key_prefix + close_job_id(group_id))
    job = await redis.enqueue_job("campaigns.close_group", group_id, _job_id=close_job_id(group_id),
                                  _queue_name=QUEUE)
    assert job is not None


async def no_job_in_progress(redis) -> bool:
    return not await jobs_in_progress(redis)


async def result_recorded(redis, job_id: str) -> bool:
    """arq writes a job's result after the job's transaction committed: the rows can be seen a moment before."""
    return await Job(job_id, redis, _queue_name=QUEUE).result_info() is not None


async def tries_of(redis, job_id: str) -> int:
    """How many times arq started the job (its result records the last try)."""
    info = await Job(job_id, redis, _queue_name=QUEUE).result_info()
    assert info is not None and info.success, info
    return info.job_try


async def test_worker_killed_while_wechat_holds_the_refunds_of_a_failed_group(redis, pay_gateway, hanging_pay,
                                                                                worker_processes):
    group, _, orders, sku = await paid_group(redis, pay_gateway)
    await schedule_deadline(redis, group.id)

    hanging_pay.hang()
    first = await worker_processes()

    # The group failed (one transaction), then both refunds went to WeChat, which took them and went quiet.
    async def both_hanging() -> bool:
        return hanging_pay.hanging >= 2

    await wait_for(both_hanging, what="both refunds hanging at WeChat")
    assert await first.kill() == -9

    assert (await Group.get(id=group.id)).status == GroupStatus.failed
    refunds = await Refund.filter(order_id__in=[o.id for o in orders])
    assert len(refunds) == 2 and all(r.status == RefundStatus.pending for r in refunds)  # never heard back
    for order in orders:
        assert len(hanging_pay.refunds_of(order.out_trade_no)) == 1

    await wait_for(lambda: no_job_in_progress(redis), timeout=10, what="arq's in-progress markers to expire")
    hanging_pay.answer_again()
    second = await worker_processes()

    async def refunds_confirmed() -> bool:
        confirmed = Refund.filter(order_id__in=[o.id for o in orders], status=RefundStatus.succeeded)
        return await confirmed.count() == 2

    await wait_for(refunds_confirmed, timeout=20, what="the refunds to be confirmed by the second worker")
    await second.stop()

    group = await Group.get(id=group.id)
    assert group.status == GroupStatus.failed and group.settled_at is not None
    for order in orders:
        refunds = await Refund.filter(order_id=order.id)
        assert [(r.reason, r.amount_fen, r.status) for r in refunds] == [
            ("group_failed", order.total_fen, RefundStatus.succeeded)]
        current = await Order.get(id=order.id)
        assert current.status == OrderStatus.refunded
        assert current.refunded_fen == current.refund_reserved_fen == current.total_fen
        # WeChat: one refund of the whole amount, although it was submitted again after the kill.
        at_wechat = hanging_pay.refunds_of(order.out_trade_no)
        assert [r.refund for r in at_wechat] == [order.total_fen]
        assert hanging_pay.refund_posts[refunds[0].out_refund_no] >= 2  # the killed try and arq's retry
    entries = await CampaignEntry.filter(group_id=group.id)
    assert {e.status for e in entries} == {EntryStatus.refunded}
    sku = await CampaignSku.get(id=sku.id)
    assert (sku.stock_left, sku.sold_units) == (10, 0)


async def test_worker_killed_inside_the_transaction_that_fulfils_a_group(redis, pay_gateway,
                                                                         worker_processes):
    group, leader, orders, _ = await paid_group(redis, pay_gateway, virtual_min_paid=2,
                                                leader_bonus_points=150)
    leader_order, member_order = orders
    await schedule_deadline(redis, group.id)

    async with RowLock("shop_order", "id = %s", member_order.id) as lock:
        first = await worker_processes()
        # Virtual completion: the group row, the leader's entry, voucher and order are written; the
        # member's order is next and locked by us.
        [(zombie, _)] = await wait_for(
            lambda: blocked_statements("UPDATE `shop_order` SET `status`='fulfilled'%",
                                       exclude=lock.thread_id),
            what="the settling transaction to wait on our lock")
        assert await first.kill() == -9
        assert (await Group.get(id=group.id)).status == GroupStatus.open  # nothing was committed
        assert not await Voucher.filter(source_type="group_order", source_id=str(leader_order.id)).exists()
    # MariaDB rolls the dead client's transaction back once it gets the lock and cannot answer.
    await wait_for(lambda: connection_gone(zombie), what="the killed worker's transaction to roll back")

    await wait_for(lambda: no_job_in_progress(redis), timeout=10, what="arq's in-progress markers to expire")
    second = await worker_processes()

    async def fulfilled() -> bool:
        return await Order.filter(id__in=[o.id for o in orders], status=OrderStatus.fulfilled).count() == 2

    await wait_for(fulfilled, timeout=20, what="the second worker to settle the group")
    await wait_for(lambda: result_recorded(redis, close_job_id(group.id)), timeout=20, what="the job's result")
    await second.stop()

    assert await tries_of(redis, close_job_id(group.id)) == 2  # arq's retry of the killed deadline job
    group = await Group.get(id=group.id)
    assert group.status == GroupStatus.succeeded and group.virtual
    for order in orders:
        assert await Voucher.filter(source_type="group_order", source_id=str(order.id)).count() == 1
    assert {e.status for e in await CampaignEntry.filter(group_id=group.id)} == {EntryStatus.fulfilled}
    bonus = await PointsLedgerEntry.filter(ref=f"group:{group.id}:leader_bonus")
    assert [(b.customer_id, b.delta) for b in bonus] == [(leader.id, 150)]
    await assert_ledger_consistent(leader.id)
    assert not await Refund.filter(order_id__in=[o.id for o in orders]).exists()


async def test_worker_killed_in_the_middle_of_releasing_referral_rewards(client, redis, worker_processes):
    # Level 1: 100 points per friend (credited to the ledger at release); level 2: 10.00 yuan cash (payable).
    await make_program(referrer_reward_type="points", referrer_reward_value=100,
                       second_level_reward_type="fixed_fen", second_level_reward_value=1000)
    grand = await login(client, "grand-" + secrets.token_hex(4))
    referrers = [await login(client, referral_code=grand.referral_code) for _ in range(2)]
    friends = [await login(client, referral_code=r.referral_code) for r in referrers for _ in range(3)]
    for friend in friends:
        await consumption_recorded(friend.id, 20_000)
    await run_worker(redis)
    ours = ReferralReward.filter(referee_id__in=[f.id for f in friends])
    assert await ours.count() == 12
    await ours.update(hold_until=clock.now() - timedelta(seconds=1))  # the 7-day hold is over

    second_referrer = max(referrers, key=lambda r: r.id)
    async with RowLock("customer", "id = %s", second_referrer.id) as lock:
        release_job = "release-" + secrets.token_hex(4)  # what the cron enqueues every ten minutes
        await redis.enqueue_job("referrals.release_due_rewards", _job_id=release_job, _queue_name=QUEUE)
        first = await worker_processes()
        # Cash chunk committed; the points chunk credited the first referrer and waits for the second.
        [(zombie, statement)] = await wait_for(
            lambda: blocked_statements("UPDATE `referral_reward` SET `status`='paid'%",
                                       exclude=lock.thread_id),
            what="the release transaction to wait on our lock")
        # Blocked on the second referrer's reward: the first referrer's were credited in this transaction.
        blocked_reward = await ReferralReward.get(id=int(re.search(r"`id`=(\d+)", statement).group(1)))
        assert blocked_reward.beneficiary_id == second_referrer.id
        assert await first.kill() == -9
    await wait_for(lambda: connection_gone(zombie), what="the killed worker's transaction to roll back")

    cash = ReferralReward.filter(referee_id__in=[f.id for f in friends], kind=RewardKind.cash)
    points = ReferralReward.filter(referee_id__in=[f.id for f in friends], kind=RewardKind.points)
    assert await cash.filter(status=RewardStatus.payable).count() == 6  # the committed chunk stays
    assert await points.filter(status=RewardStatus.pending).count() == 6  # the killed chunk rolled back
    assert not await PointsLedgerEntry.filter(customer_id__in=[r.id for r in referrers]).exists()

    await wait_for(lambda: no_job_in_progress(redis), timeout=10, what="arq's in-progress markers to expire")
    second = await worker_processes()

    async def released() -> bool:
        return not await ReferralReward.filter(referee_id__in=[f.id for f in friends],
                                               status=RewardStatus.pending).exists()

    await wait_for(released, timeout=20, what="the second worker to finish the release")
    await wait_for(lambda: result_recorded(redis, release_job), timeout=20, what="the job's result")
    await second.stop()

    assert await tries_of(redis, release_job) == 2
    rewards = await ReferralReward.filter(referee_id__in=[f.id for f in friends])
    expected = sorted((f.id, level) for f in friends for level in (1, 2))
    assert sorted((r.referee_id, r.level) for r in rewards) == expected  # one per referee and level
    assert {(r.kind, r.status) for r in rewards} == {(RewardKind.points, RewardStatus.paid),
                                                    (RewardKind.cash, RewardStatus.payable)}
    for reward in rewards:
        if reward.kind == RewardKind.points:
            assert await PointsLedgerEntry.filter(ref=points_ref(reward.id)).count() == 1
    for referrer in referrers:
        assert await assert_ledger_consistent(referrer.id) == 300
    total = await ReferralReward.filter(beneficiary_id=grand.id, status=RewardStatus.payable).annotate(
        s=Sum("amount_fen")).values("s")
    assert int(total[0]["s"]) == 6 * 1000
