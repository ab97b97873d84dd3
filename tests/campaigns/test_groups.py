"""Group buys under concurrency, with real arq burst workers: stock and seats never oversold, each group settled
once (fulfilled or refunded), virtual completion, tier refunds to the fen, campaign end closes everything."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest
from arq import Retry

from campaigns.groupbuy import groups
from campaigns.groupbuy import tasks as groupbuy_tasks
from campaigns.groupbuy.models import (
    Campaign,
    CampaignEntry,
    CampaignKind,
    CampaignSku,
    CampaignStatus,
    EntryStatus,
    Group,
    GroupStatus,
)
from campaigns.groupbuy.tasks import close_job_id
from orders.models import Order, OrderLine, OrderStatus, Refund, RefundStatus
from kernel import clock
from kernel.db import transaction
from points_mall.models import PointsLedgerEntry, Voucher, VoucherStatus
from tests.orders.factories import assert_refunded_in_full_by_a_second_refund, deadlock, enqueue_now, run_jobs
from tests.campaigns.groupbuy_factories import make_campaign, pay
from tests.factories import customer_headers, make_customer


async def open_paid_group(campaign, sku, leader=None, gateway=None):
    leader = leader or await make_customer()
    async with transaction() as conn:
        group, order, _ = await groups.open_group(conn, leader.id, campaign.id, sku.id)
    await pay(order, gateway)
    return await Group.get(id=group.id), leader


async def join(group_id: int, customer=None):
    customer = customer or await make_customer()
    async with transaction() as conn:
        _, order, entry = await groups.join_group(conn, customer.id, group_id)
    return order, customer


async def test_three_hundred_concurrent_joins_for_forty_seats_of_stock(client, redis):
    campaign, sku = await make_campaign(stock=40, group_size=5)
    opened = [await open_paid_group(campaign, sku) for _ in range(10)]  # 10 of the 40 units, 40 free seats
    joiners = [await make_customer() for _ in range(300)]

    async def attempt(i: int):
        group = opened[i % len(opened)][0]
        return await client.post(f"/app/groups/{group.id}/join", headers=customer_headers(joiners[i]))

    responses = await asyncio.gather(*[attempt(i) for i in range(300)])
    codes = Counter(r.status_code for r in responses)
    assert codes[201] == 30 and codes[409] == 270 and sum(codes.values()) == 300, codes
    assert {r.json()["code"] for r in responses if r.status_code == 409} <= {"sold_out", "group_full"}

    for r in responses:
        if r.status_code == 201:
            await pay(r.json()["order_id"])
    await run_jobs(redis)

    sku = await CampaignSku.get(id=sku.id)
    assert sku.stock_left == 0 and sku.sold_units == 40
    paid = await CampaignEntry.filter(campaign_id=campaign.id, status__in=(EntryStatus.paid, EntryStatus.fulfilled))
    assert len(paid) == 40
    for group, _ in opened:
        group = await Group.get(id=group.id)
        members = await CampaignEntry.filter(group_id=group.id, status__in=(EntryStatus.paid, EntryStatus.fulfilled))
        assert len(members) == group.paid_count <= group.size and group.seats_taken <= group.size
        assert group.status == (GroupStatus.succeeded if group.paid_count == group.size else GroupStatus.open)


async def test_the_last_seat_contested_by_twenty_friends_goes_to_one(client, redis):
    campaign, sku = await make_campaign(group_size=3)
    group, _ = await open_paid_group(campaign, sku)
    first, _ = await join(group.id)
    await pay(first)
    friends = [await make_customer() for _ in range(20)]
    responses = await asyncio.gather(*[
        client.post(f"/app/groups/{group.id}/join", headers=customer_headers(f)) for f in friends
    ])
    codes = Counter(r.status_code for r in responses)
    assert codes == Counter({201: 1, 409: 19}), codes
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"group_full"}
    winner = next(r for r in responses if r.status_code == 201)
    await pay(winner.json()["order_id"])
    await run_jobs(redis)
    group = await Group.get(id=group.id)
    assert group.status == GroupStatus.succeeded and group.paid_count == 3 and group.seats_taken == 3
    assert await CampaignEntry.filter(group_id=group.id, status=EntryStatus.fulfilled).count() == 3
    vouchers = await Voucher.filter(source_type="group_order").filter(
        source_id__in=[str(e.order_id) for e in await CampaignEntry.filter(group_id=group.id)])
    assert len(vouchers) == 3 and {v.status for v in vouchers} == {VoucherStatus.issued}
    assert (await CampaignSku.get(id=sku.id)).stock_left == 100 - 3


async def test_deadline_job_and_sweeper_race_settle_the_group_once_and_refund_each_paid_member_once(
    client, redis, wechatpay, live_gateway
):
    real_now = clock.now()
    clock.set_now(real_now - timedelta(minutes=90))  # the group was opened 90 minutes ago, 60 minutes to fill
    campaign, sku = await make_campaign(group_size=3, stock=10)
    group, leader = await open_paid_group(campaign, sku, gateway=live_gateway)
    member_order, _ = await join(group.id)
    await pay(member_order, live_gateway)
    unpaid_order, _ = await join(group.id)
    clock.set_now(None)  # now the deadline has passed

    # The deterministic deadline job (scheduled twice), the sweeper three times, all at once.
    for i in range(3):
        await enqueue_now(redis, "campaigns.sweep", job_id=f"sweep-{group.id}-{i}")
    await enqueue_now(redis, "campaigns.close_group", group.id, job_id=close_job_id(group.id))
    await enqueue_now(redis, "campaigns.close_group", group.id, job_id=close_job_id(group.id))
    await run_jobs(redis, ctx={"payment_gateway": live_gateway})

    group = await Group.get(id=group.id)
    assert group.status == GroupStatus.failed and group.open_slot is None
    entries = await CampaignEntry.filter(group_id=group.id).order_by("id")
    paid_orders = [e.order_id for e in entries if e.order_id != unpaid_order.id]
    refunds = await Refund.filter(order_id__in=paid_orders)
    assert sorted(r.order_id for r in refunds) == sorted(paid_orders)  # one refund each, no more
    assert all(r.reason == "group_failed" and r.status == RefundStatus.succeeded for r in refunds)
    at_wechat = [r for r in wechatpay.refunds.values() if r.out_refund_no in {x.out_refund_no for x in refunds}]
    assert len(at_wechat) == 2
    assert [e.status for e in entries] == [EntryStatus.refunded, EntryStatus.refunded, EntryStatus.released]
    assert (await Order.get(id=unpaid_order.id)).status == OrderStatus.closed
    assert (await CampaignSku.get(id=sku.id)).stock_left == 10 and (await CampaignSku.get(id=sku.id)).sold_units == 0

    # Running everything again changes nothing.
    await enqueue_now(redis, "campaigns.sweep", job_id=f"sweep-again-{group.id}")
    await run_jobs(redis, ctx={"payment_gateway": live_gateway})
    assert await Refund.filter(order_id__in=paid_orders).count() == 2


async def test_virtual_completion_fulfils_the_paid_members_and_closes_the_unpaid_seat(client, redis):
    real_now = clock.now()
    clock.set_now(real_now - timedelta(minutes=90))
    campaign, sku = await make_campaign(group_size=3, virtual_min_paid=2, leader_bonus_points=150)
    group, leader = await open_paid_group(campaign, sku)
    member_order, member = await join(group.id)
    await pay(member_order)
    unpaid_order, _ = await join(group.id)
    clock.set_now(None)

    await enqueue_now(redis, "campaigns.close_group", group.id, job_id=close_job_id(group.id))
    await run_jobs(redis)
    group = await Group.get(id=group.id)
    assert group.status == GroupStatus.succeeded and group.virtual and group.paid_count == 2
    entries = await CampaignEntry.filter(group_id=group.id).order_by("id")
    assert [e.status for e in entries] == [EntryStatus.fulfilled, EntryStatus.fulfilled, EntryStatus.released]
    assert (await Order.get(id=unpaid_order.id)).status == OrderStatus.closed
    assert (await Order.get(id=member_order.id)).status == OrderStatus.fulfilled
    assert await Voucher.filter(source_type="group_order", source_id=str(member_order.id)).count() == 1
    bonus = await PointsLedgerEntry.get(ref=f"group:{group.id}:leader_bonus")
    assert bonus.delta == 150 and bonus.customer_id == leader.id
    assert not await Refund.filter(order_id__in=[e.order_id for e in entries]).exists()


async def test_tier_price_refunds_add_up_to_the_fen(client, redis):
    real_now = clock.now()
    clock.set_now(real_now - timedelta(hours=3))
    campaign, sku = await make_campaign(CampaignKind.category, group_price_fen=9_999, tiers=[(3, 8_887), (5, 7_771)],
                                        per_customer_limit=5, ends_at=real_now - timedelta(minutes=1), stock=50)
    purchases = []
    for quantity in (1, 1, 2, 1, 1):  # prices seen: 9999, 9999, 9999 x2, 8887, 7771 (sold 0, 1, 2, 4, 5)
        customer = await make_customer()
        async with transaction() as conn:
            order, entry = await groups.purchase(conn, customer.id, campaign.id, sku.id, quantity)
        await pay(order)
        purchases.append((order, entry))
    abandoned = await make_customer()
    async with transaction() as conn:
        unpaid, _ = await groups.purchase(conn, abandoned.id, campaign.id, sku.id, 3)
    clock.set_now(None)
    assert [e.unit_price_fen for _, e in purchases] == [9_999, 9_999, 9_999, 8_887, 7_771]

    await enqueue_now(redis, "campaigns.sweep", job_id=f"sweep-tier-{campaign.id}")
    await run_jobs(redis)
    sku = await CampaignSku.get(id=sku.id)
    assert sku.final_price_fen == 7_771 and sku.sold_units == 6
    refunds = {r.order_id: r for r in await Refund.filter(order_id__in=[o.id for o, _ in purchases])}
    expected = {o.id: (e.unit_price_fen - 7_771) * e.quantity for o, e in purchases if e.unit_price_fen > 7_771}
    assert {oid: r.amount_fen for oid, r in refunds.items()} == expected
    paid_total = sum(o.total_fen for o, _ in purchases)
    assert sum(r.amount_fen for r in refunds.values()) == paid_total - 7_771 * 6 == 2_228 * 4 + 1_116
    assert all(r.reason == "tier_price" and r.status == RefundStatus.succeeded for r in refunds.values())
    for order, entry in purchases:
        current = await Order.get(id=order.id)
        assert current.paid_fen - current.refunded_fen == 7_771 * entry.quantity
        assert current.status == OrderStatus.fulfilled
    assert (await Order.get(id=unpaid.id)).status == OrderStatus.closed
    assert sku.stock_left == 50 - 6
    campaign = await Campaign.get(id=campaign.id)
    assert campaign.status == CampaignStatus.ended and campaign.settled_at is not None

    await enqueue_now(redis, "campaigns.end_campaign", campaign.id, job_id=f"end-again-{campaign.id}")
    await run_jobs(redis)
    assert await Refund.filter(order_id__in=[o.id for o, _ in purchases]).count() == len(expected)


async def test_campaign_end_closes_everything(client, redis):
    real_now = clock.now()
    clock.set_now(real_now - timedelta(hours=2))
    campaign, sku = await make_campaign(group_size=3, time_limit_minutes=24 * 60, stock=20,
                                        ends_at=real_now - timedelta(minutes=1))
    full, _ = await open_paid_group(campaign, sku)
    for _ in range(2):
        order, _ = await join(full.id)
        await pay(order)
    half, _ = await open_paid_group(campaign, sku)
    half_member, _ = await join(half.id)
    await pay(half_member)
    await join(half.id)  # never pays
    pending_leader = await make_customer()
    async with transaction() as conn:
        pending, pending_order, _ = await groups.open_group(conn, pending_leader.id, campaign.id, sku.id)
    clock.set_now(None)

    await enqueue_now(redis, "campaigns.sweep", job_id=f"sweep-end-{campaign.id}")
    await run_jobs(redis)
    campaign = await Campaign.get(id=campaign.id)
    assert campaign.status == CampaignStatus.ended and campaign.settled_at is not None
    statuses = {g.id: g.status for g in await Group.filter(campaign_id=campaign.id)}
    assert statuses == {full.id: GroupStatus.succeeded, half.id: GroupStatus.failed, pending.id: GroupStatus.failed}
    assert not await CampaignEntry.filter(campaign_id=campaign.id, status=EntryStatus.held).exists()
    assert not await Order.filter(id__in=await CampaignEntry.filter(campaign_id=campaign.id).values_list(
        "order_id", flat=True), status=OrderStatus.pending_payment).exists()
    assert await Refund.filter(order_id=half_member.id, reason="group_failed", status=RefundStatus.succeeded).exists()
    assert (await Order.get(id=pending_order.id)).status == OrderStatus.closed
    sku = await CampaignSku.get(id=sku.id)
    assert sku.stock_left == 20 - 3 and sku.sold_units == 3


async def test_a_payment_landing_after_the_group_failed_is_sent_back(client, redis):
    real_now = clock.now()
    clock.set_now(real_now - timedelta(minutes=90))
    campaign, sku = await make_campaign(group_size=3, stock=10)
    group, _ = await open_paid_group(campaign, sku)
    late_order, _ = await join(group.id)
    clock.set_now(None)
    async with transaction() as conn:
        assert await groups.settle_group(conn, group.id) == "failed"
    await pay(late_order)  # WeChat confirms the payment only now
    await run_jobs(redis)
    refund = await Refund.get(order_id=late_order.id)
    assert refund.reason == "group_closed" and refund.status == RefundStatus.succeeded
    assert (await CampaignEntry.get(order_id=late_order.id)).status == EntryStatus.refunded
    assert (await Order.get(id=late_order.id)).status == OrderStatus.refunded
    sku = await CampaignSku.get(id=sku.id)
    assert sku.stock_left == 10 and sku.sold_units == 0
    assert (await Group.get(id=group.id)).paid_count == 1


async def test_one_customer_tapping_buy_twelve_times_at_once_gets_the_limit_and_no_more(client):
    campaign, sku = await make_campaign(CampaignKind.category, per_customer_limit=2, stock=50)
    buyer = await make_customer()
    responses = await asyncio.gather(*[
        client.post(f"/app/campaigns/{campaign.id}/purchases", json={"sku_id": sku.id},
                    headers=customer_headers(buyer))
        for _ in range(12)
    ])
    codes = Counter(r.status_code for r in responses)
    assert codes == Counter({201: 2, 409: 10}), [r.text for r in responses if r.status_code not in (201, 409)]
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"customer_limit_reached"}
    assert await CampaignEntry.filter(campaign_id=campaign.id, customer_id=buyer.id).count() == 2
    assert await Order.filter(customer_id=buyer.id).count() == 2
    assert (await CampaignSku.get(id=sku.id)).stock_left == 50 - 2


async def test_deadline_job_still_deadlocked_after_its_quick_retries_is_retried_by_arq(client, monkeypatch):
    campaign, sku = await make_campaign(group_size=3)
    group, _ = await open_paid_group(campaign, sku)

    async def deadlocked(conn, group_id, **_):
        raise deadlock()

    monkeypatch.setattr(groups, "settle_group", deadlocked)
    with pytest.raises(Retry):
        await groupbuy_tasks.close_group({"job_try": 1}, group.id)
    monkeypatch.undo()
    clock.set_now(group.deadline + timedelta(seconds=1))
    assert await groupbuy_tasks.close_group({"job_try": 2}, group.id) == "failed"


async def test_seats_left_but_stock_gone_is_sold_out_for_every_friend_refused(client, redis):
    # The seat and the unit are one statement; when it changes nothing, the refusal names the row that
    # refused: here every group has free seats, so each refusal is sold_out and no seat is left taken.
    campaign, sku = await make_campaign(stock=3, group_size=5)
    group, _ = await open_paid_group(campaign, sku)  # the leader's unit: 2 left, 4 free seats
    friends = [await make_customer() for _ in range(12)]
    responses = await asyncio.gather(*[
        client.post(f"/app/groups/{group.id}/join", headers=customer_headers(f)) for f in friends
    ])
    codes = Counter(r.status_code for r in responses)
    assert codes == Counter({201: 2, 409: 10}), codes
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"sold_out"}
    assert (await Group.get(id=group.id)).seats_taken == 3
    assert (await CampaignSku.get(id=sku.id)).stock_left == 0
    refused = [r for r in responses if r.status_code == 409]
    assert await CampaignEntry.filter(group_id=group.id).count() == 3 and len(refused) == 10
    await run_jobs(redis)  # relays the two orders' close jobs (due later: dropped), so no later worker waits on them


async def end_refund_unpaid(refund: Refund, status: str) -> None:
    """WeChat Pay ends the refund without paying it (the refund notification's path, signature aside)."""
    from orders import service as orders
    from orders.gateway import RefundResult

    async with transaction() as conn:
        await orders.lock_order(conn, order_id=refund.order_id)
        current = await Refund.get(id=refund.id).using_db(conn)
        await orders.apply_refund_result(
            conn, current, RefundResult(out_refund_no=current.out_refund_no, status=status), source="test")


async def failed_group_refund(sku_stock: int = 10) -> tuple[Order, Refund, CampaignSku]:
    """A leader paid, nobody joined, the group failed: the leader's refund is asked (not yet pushed)."""
    real_now = clock.now()
    clock.set_now(real_now - timedelta(minutes=90))
    campaign, sku = await make_campaign(group_size=3, stock=sku_stock)
    group, leader = await open_paid_group(campaign, sku)
    clock.set_now(None)
    async with transaction() as conn:
        assert await groups.settle_group(conn, group.id) == "failed"
    order = await Order.get(customer_id=leader.id)
    refund = await Refund.get(order_id=order.id)
    assert refund.reason == "group_failed"
    assert (await CampaignEntry.get(order_id=order.id)).status == EntryStatus.refunding
    return order, refund, sku


async def test_a_failed_group_refund_that_wechat_closes_is_asked_again_and_the_entry_ends_refunded(client, redis):
    """The refund of a failed group's member closed at WeChat Pay (final: it never pays). The entry used to stay
    `refunding` for good beside an order back to `paid`: nobody owed the money moved. The member gave their seat
    and stock back and the group is over, so the money goes back again, once, and the entry ends refunded."""
    order, refund, sku = await failed_group_refund()
    await end_refund_unpaid(refund, "CLOSED")
    await run_jobs(redis)
    await assert_refunded_in_full_by_a_second_refund(order.id, refund.id)
    assert (await CampaignEntry.get(order_id=order.id)).status == EntryStatus.refunded
    sku = await CampaignSku.get(id=sku.id)
    assert (sku.stock_left, sku.sold_units) == (10, 0)


async def test_a_failed_group_refund_asked_again_that_ends_unpaid_too_is_left_for_finance(client, redis):
    """One automatic retry: a second refund the gateway also ends unpaid is not asked a third time (finance looks;
    a gateway that refuses every refund must not make an endless chain of them)."""
    order, refund, _ = await failed_group_refund()
    await end_refund_unpaid(refund, "CLOSED")
    retry = await Refund.filter(order_id=order.id).exclude(id=refund.id).get()
    await end_refund_unpaid(retry, "CLOSED")
    await run_jobs(redis)
    assert await Refund.filter(order_id=order.id).count() == 2
    current = await Order.get(id=order.id)
    assert (current.status, current.refund_reserved_fen) == (OrderStatus.paid, 0)


async def test_an_abnormal_failed_group_refund_keeps_the_entry_refunding_until_paid_by_hand(client, redis):
    """ABNORMAL is not final (finance pays it out by hand in the merchant platform, then WeChat Pay says SUCCESS):
    nothing is asked again meanwhile, and the late SUCCESS ends the entry refunded."""
    from orders import service as orders
    from orders.gateway import RefundResult

    order, refund, _ = await failed_group_refund()
    await end_refund_unpaid(refund, "ABNORMAL")
    await run_jobs(redis)
    assert await Refund.filter(order_id=order.id).count() == 1
    assert (await CampaignEntry.get(order_id=order.id)).status == EntryStatus.refunding
    async with transaction() as conn:
        await orders.lock_order(conn, order_id=order.id)
        current = await Refund.get(id=refund.id).using_db(conn)
        await orders.apply_refund_result(conn, current, RefundResult(
            out_refund_no=refund.out_refund_no, status="SUCCESS", refund_id="50300"), source="test")
    assert (await Order.get(id=order.id)).status == OrderStatus.refunded
    assert (await CampaignEntry.get(order_id=order.id)).status == EntryStatus.refunded


async def test_a_released_seat_paid_again_never_counts_towards_its_group(client, redis):
    # Insurance for any later run of the paid-order job on an entry whose seat went back: the group's count
    # of paid seats stays what its members paid.
    campaign, sku = await make_campaign(group_size=3)
    group, _ = await open_paid_group(campaign, sku)
    order, _ = await join(group.id)
    async with transaction() as conn:
        line = (await OrderLine.filter(order_id=order.id).using_db(conn))[0]
        await groups.release_entry(conn, order, line)
        assert await groups.entry_paid(conn, order, line) == groups.NOTHING
    assert (await Group.get(id=group.id)).paid_count == 1
    assert (await CampaignEntry.get(order_id=order.id)).status == EntryStatus.released
    await run_jobs(redis)  # the order's close job is due later: relayed and dropped, so no later worker waits on it
