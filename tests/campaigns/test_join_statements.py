"""The join on MySQL/MariaDB: its one-statement read hydrates the group, campaign and SKU the ORM reads; the
order, entry and close job its batch of writes answers are the rows the database holds; a refusal in the middle
of the batch leaves nothing; and it takes its rows in the order a give-back does."""

from __future__ import annotations

import asyncio
import secrets

from campaigns.groupbuy import groups
from campaigns.groupbuy.models import Campaign, CampaignEntry, CampaignQuota, CampaignSku, Group
from kernel import clock
from kernel.db import transaction
from kernel.identity.models import Customer
from kernel.outbox.models import OutboxMessage
from orders.models import Order, OrderLine
from tests.campaigns.groupbuy_factories import make_campaign, pay
from tests.orders.factories import run_jobs
from tests.factories import customer_headers, make_customer


async def _same(fast, slow, model, columns=None) -> None:
    for column in columns or model._meta.db_fields:
        assert getattr(fast, column) == getattr(slow, column), f"{model.__name__}.{column}"


async def _paid_group(campaign, sku, leader) -> Group:
    async with transaction() as conn:
        group, order, _ = await groups.open_group(conn, leader.id, campaign.id, sku.id)
    await pay(order)
    return group


async def test_the_one_statement_read_is_what_the_orm_reads(client):
    # Text that JSON must escape travels through the read's one JSON column unchanged.
    campaign, sku = await make_campaign(new_customers_only=True, title='闺蜜卡 "双人" \\ 😀 ' + secrets.token_hex(3))
    await CampaignSku.filter(id=sku.id).update(title='小气泡 "A\\B"\t😀')
    leader = await make_customer()
    group = await _paid_group(campaign, sku, leader)
    async with transaction() as conn:
        assert conn.capabilities.dialect == "mysql"  # the suite runs on MariaDB: the fast path is under test
        fast_group, fast_campaign, fast_sku = await groups._group_campaign_sku(conn, group.id, leader.id)
    # The columns the join reads (partial models): each as the ORM reads it.
    await _same(fast_group, await Group.get(id=group.id), Group, groups._JOIN_COLUMNS["g"])
    await _same(fast_campaign, await Campaign.get(id=campaign.id), Campaign, groups._JOIN_COLUMNS["c"])
    await _same(fast_sku, await CampaignSku.get(id=sku.id), CampaignSku, groups._JOIN_COLUMNS["s"])
    assert fast_sku.title == '小气泡 "A\\B"\t😀' and '"双人" \\ 😀' in fast_campaign.title


async def test_the_entry_and_order_answered_are_the_rows_stored_and_the_quota_counts_it(client, redis):
    campaign, sku = await make_campaign()
    leader, friend = await make_customer(), await make_customer()
    group = await _paid_group(campaign, sku, leader)
    async with transaction() as conn:
        _, order, entry = await groups.join_group(conn, friend.id, group.id)
    await _same(entry, await CampaignEntry.get(id=entry.id), CampaignEntry)
    # The order, its line and its close job went in the same batch, the order's id passed along in it.
    await _same(order, await Order.get(id=order.id), Order)
    assert entry.order_id == order.id and order.expires_at <= group.deadline
    close = await OutboxMessage.get(job_name="orders.close_unpaid", args=[order.id])
    assert close.run_at == order.expires_at and close.delivered_at is None
    lines = await OrderLine.filter(order_id=order.id)
    assert [(line.kind, line.quantity, line.amount_fen) for line in lines] == [
        (groups.LINE_KIND, 1, sku.group_price_fen)]
    quota = await CampaignQuota.get(campaign_id=campaign.id, customer_id=friend.id)
    assert quota.units == 1
    assert (await Group.get(id=group.id)).seats_taken == 2
    assert (await CampaignSku.get(id=sku.id)).stock_left == sku.stock_left - 2
    await run_jobs(redis)  # the order's close job is due later: relayed and dropped, no later worker waits


async def test_an_erased_customer_cannot_join_and_nothing_is_held(client):
    campaign, sku = await make_campaign()
    leader, friend = await make_customer(), await make_customer()
    group = await _paid_group(campaign, sku, leader)
    await Customer.filter(id=friend.id).update(deleted_at=clock.now())
    for group_id in (group.id, 987654321):  # the erasure is the answer, whether the group exists or not
        refused = await client.post(f"/app/groups/{group_id}/join", headers=customer_headers(friend))
        assert refused.status_code == 401 and refused.json()["code"] == "account_erased"
    assert not await Order.filter(customer_id=friend.id).exists()
    assert not await CampaignEntry.filter(customer_id=friend.id).exists()
    assert (await Group.get(id=group.id)).seats_taken == 1


async def test_a_join_refused_by_the_quota_in_the_middle_of_its_batch_leaves_nothing(client, redis):
    # The entry is new (another group), so the batch passes its unique key; the quota refuses after it and
    # the seat and stock statement after that still ran: all of it is rolled back, and the answer is the limit.
    campaign, sku = await make_campaign(per_customer_limit=1)
    first_leader, second_leader, friend = await make_customer(), await make_customer(), await make_customer()
    first = await _paid_group(campaign, sku, first_leader)
    second = await _paid_group(campaign, sku, second_leader)
    joined = await client.post(f"/app/groups/{first.id}/join", headers=customer_headers(friend))
    assert joined.status_code == 201
    stock_before = (await CampaignSku.get(id=sku.id)).stock_left
    refused = await client.post(f"/app/groups/{second.id}/join", headers=customer_headers(friend))
    assert refused.status_code == 409 and refused.json()["code"] == "customer_limit_reached"
    assert (await Group.get(id=second.id)).seats_taken == 1
    assert (await CampaignSku.get(id=sku.id)).stock_left == stock_before
    assert await CampaignEntry.filter(customer_id=friend.id).count() == 1
    assert await Order.filter(customer_id=friend.id).count() == 1
    assert (await CampaignQuota.get(campaign_id=campaign.id, customer_id=friend.id)).units == 1
    await run_jobs(redis)  # the orders' close jobs are due later: relayed and dropped, no later worker waits


async def test_a_join_into_a_full_group_after_its_batch_says_full_and_holds_nothing(client, redis):
    campaign, sku = await make_campaign()
    leader = await make_customer()
    group = await _paid_group(campaign, sku, leader)
    friends = [await make_customer() for _ in range(3)]
    answers = [await client.post(f"/app/groups/{group.id}/join", headers=customer_headers(f)) for f in friends]
    assert [a.status_code for a in answers] == [201, 201, 409]  # a group of three: leader and two friends
    assert answers[2].json()["code"] == "group_full"
    late = friends[2]
    assert not await Order.filter(customer_id=late.id).exists()
    assert not await CampaignQuota.filter(campaign_id=campaign.id, customer_id=late.id).exists()
    assert (await CampaignSku.get(id=sku.id)).stock_left == sku.stock_left - 3
    for friend in friends[:2]:
        await run_jobs(redis)  # the orders' close jobs are due later: relayed and dropped, no later worker waits



async def test_a_join_does_not_wait_on_a_release_that_waits_for_its_quota(client, redis):
    # A friend's order closes unpaid (its seat, stock and quota go back) while another friend joins the same
    # group. The give-back takes its rows in the join's order (quota, group, SKU): while the release waits for
    # its quota row (held here by a transaction of our own) it holds neither the group nor the SKU, so the join
    # goes through. Taken SKU first, the release would hold the SKU the join needs and then want the group the
    # join holds: a deadlock, one of them rolled back and run again.
    from kernel.db import run_in_transaction
    from orders import service as orders
    from tests.failures.support import RowLock, blocked_statements, wait_for

    campaign, sku = await make_campaign()
    leader, leaving, joining = await make_customer(), await make_customer(), await make_customer()
    group = await _paid_group(campaign, sku, leader)
    joined = await client.post(f"/app/groups/{group.id}/join", headers=customer_headers(leaving))
    assert joined.status_code == 201
    unpaid = joined.json()["order_id"]
    async with RowLock("gb_quota", "campaign_id = %s AND customer_id = %s", campaign.id, leaving.id) as lock:
        release = asyncio.create_task(run_in_transaction(
            lambda conn: orders.close_unpaid(conn, unpaid, "payment_window_expired")))
        await wait_for(lambda: blocked_statements("UPDATE `gb_quota`%", exclude=lock.thread_id),
                       what="the release to wait for its quota row")
        join = await asyncio.wait_for(
            client.post(f"/app/groups/{group.id}/join", headers=customer_headers(joining)), 10)
        assert join.status_code == 201, join.text
    assert await asyncio.wait_for(release, 10) is True
    assert (await Group.get(id=group.id)).seats_taken == 2  # the leader and the friend who joined
    assert (await CampaignSku.get(id=sku.id)).stock_left == sku.stock_left - 2
    assert not await CampaignQuota.filter(campaign_id=campaign.id, customer_id=leaving.id, units__gt=0).exists()
    await run_jobs(redis)  # the orders' close jobs are due later: relayed and dropped, no later worker waits
