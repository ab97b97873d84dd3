"""WeChat's payment notification arrives while the order's own transaction has not committed: the notify
route cannot see the order. It must answer non-2xx so WeChat delivers it again; the retry applies it once."""

from __future__ import annotations

import asyncio

from campaigns.groupbuy import groups
from campaigns.groupbuy.models import CampaignEntry, EntryStatus, Group
from orders.models import NotificationOutcome, Order, OrderStatus, PaymentEvent
from kernel.db import transaction
from kernel.outbox.models import OutboxMessage
from tests.orders.factories import run_jobs
from tests.campaigns.groupbuy_factories import make_campaign, pay
from tests.factories import make_customer

NOTIFY = "/payments/wechat/notify"


async def test_notification_for_an_order_not_yet_committed_is_refused_then_applied_once(
    client, redis, api_pays_through_fake, pay_gateway
):
    wechat = api_pays_through_fake
    campaign, sku = await make_campaign(group_size=3)
    leader = await make_customer()
    async with transaction() as conn:
        group, leader_order, _ = await groups.open_group(conn, leader.id, campaign.id, sku.id)
    await pay(leader_order, pay_gateway)

    friend = await make_customer()
    created: asyncio.Future = asyncio.get_running_loop().create_future()
    commit = asyncio.Event()

    async def join_and_commit_late() -> None:
        # A task of its own: the request below must not find this transaction in its context.
        async with transaction() as conn:
            _, order, _ = await groups.join_group(conn, friend.id, group.id)
            created.set_result(order)
            await commit.wait()

    joining = asyncio.create_task(join_and_commit_late())
    order = await created
    try:
        assert not await Order.filter(id=order.id).exists()  # not visible outside its transaction
        # The friend has paid at WeChat; the notification lands before the order's transaction commits.
        resource = wechat.transaction_resource(order.out_trade_no, order.total_fen, friend.openid)
        headers, body = wechat.notification("TRANSACTION.SUCCESS", resource)
        early = await client.post(NOTIFY, content=body, headers=headers)
        assert early.status_code // 100 != 2, early.text  # not acknowledged: WeChat will deliver it again
        assert early.json() == {"code": "FAIL", "message": "unknown_order"}
    finally:
        commit.set()
        await joining

    for _ in range(2):  # WeChat's retries, now that the order is visible
        retried = await client.post(NOTIFY, content=body, headers=headers)
        assert retried.status_code == 204, retried.text
    await run_jobs(redis)

    order = await Order.get(id=order.id)
    assert order.status == OrderStatus.paid and order.paid_fen == order.total_fen
    outcomes = await PaymentEvent.filter(out_trade_no=order.out_trade_no).order_by("id").values_list(
        "outcome", flat=True)
    assert outcomes == [NotificationOutcome.unknown_order, NotificationOutcome.applied,
                        NotificationOutcome.duplicate]
    paid_jobs = [m for m in await OutboxMessage.filter(job_name="orders.order_paid") if m.args == [order.id]]
    assert len(paid_jobs) == 1
    # The seat counts towards the group once.
    assert (await CampaignEntry.get(order_id=order.id)).status == EntryStatus.paid
    assert (await Group.get(id=group.id)).paid_count == 2
