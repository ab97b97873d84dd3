"""The join's one-statement read (MySQL/MariaDB) hydrates the group, campaign and SKU the ORM reads, and
the entry it builds from its insert is the row the database holds."""

from __future__ import annotations

from campaigns.groupbuy import groups
from campaigns.groupbuy.models import Campaign, CampaignEntry, CampaignQuota, CampaignSku, Group
from kernel import clock
from kernel.db import transaction
from kernel.identity.models import Customer
from orders.models import Order
from tests.campaigns.groupbuy_factories import make_campaign, pay
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
    campaign, sku = await make_campaign(new_customers_only=True)
    leader = await make_customer()
    group = await _paid_group(campaign, sku, leader)
    async with transaction() as conn:
        assert conn.capabilities.dialect == "mysql"  # the suite runs on MariaDB: the fast path is under test
        fast_group, fast_campaign, fast_sku = await groups._group_campaign_sku(conn, group.id, leader.id)
    # The columns the join reads (partial models): each as the ORM reads it.
    await _same(fast_group, await Group.get(id=group.id), Group, groups._JOIN_COLUMNS["g"])
    await _same(fast_campaign, await Campaign.get(id=campaign.id), Campaign, groups._JOIN_COLUMNS["c"])
    await _same(fast_sku, await CampaignSku.get(id=sku.id), CampaignSku, groups._JOIN_COLUMNS["s"])


async def test_the_entry_answered_is_the_row_stored_and_the_quota_counts_it(client):
    campaign, sku = await make_campaign()
    leader, friend = await make_customer(), await make_customer()
    group = await _paid_group(campaign, sku, leader)
    async with transaction() as conn:
        _, _, entry = await groups.join_group(conn, friend.id, group.id)
    await _same(entry, await CampaignEntry.get(id=entry.id), CampaignEntry)
    quota = await CampaignQuota.get(campaign_id=campaign.id, customer_id=friend.id)
    assert quota.units == 1
    assert (await Group.get(id=group.id)).seats_taken == 2
    assert (await CampaignSku.get(id=sku.id)).stock_left == sku.stock_left - 2


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
