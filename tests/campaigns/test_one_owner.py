"""One owner per state between group buys and orders: the group-buy room's hooks answer, the orders room moves
the orders. No order is fulfilled or refunded from inside a hook, no hook runs inside another, and an order is
marked fulfilled once, whatever a payment sets off (a category purchase, the seat that fills a group, a payment
after the group failed, a leader refunded before the paid-order job)."""

from __future__ import annotations

import secrets
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from campaigns.groupbuy import groups
from campaigns.groupbuy.models import CampaignEntry, CampaignKind, EntryStatus, Group, GroupStatus
from orders import fulfilment
from orders import refunds as order_refunds
from orders import hooks as line_kinds
from orders import service as orders
from orders.gateway import TradeState, default_gateway
from orders.models import NotificationOutcome, Order, OrderStatus, Refund
from kernel import clock
from kernel.db import transaction
from tests.campaigns.groupbuy_factories import make_campaign, pay
from tests.factories import make_customer

HOOKS = ("release", "on_payment_applied", "on_paid", "on_refund_requested", "on_refunded")
ORDER_MOVES = ("mark_fulfilled", "request_refund")


@dataclass
class Recorder:
    depth: int = 0
    deepest: int = 0
    hooks: Counter = field(default_factory=Counter)
    # (what, order id, how many hooks were running when the order was moved)
    moves: list[tuple[str, int, int]] = field(default_factory=list)

    def fulfilled(self, order_id: int) -> list[int]:
        return [depth for what, oid, depth in self.moves if what == "mark_fulfilled" and oid == order_id]

    def refunds(self, order_id: int) -> list[int]:
        return [depth for what, oid, depth in self.moves if what == "request_refund" and oid == order_id]


@pytest.fixture
def recorder(client, monkeypatch) -> Recorder:
    """Wrap the registered campaign-entry kind's hooks and the orders room's moves, recording who runs inside whom."""
    rec = Recorder()
    real = line_kinds.line_kind(groups.LINE_KIND)

    def watched(name, hook):
        async def run(conn, order, *rest):
            rec.depth += 1
            rec.deepest = max(rec.deepest, rec.depth)
            rec.hooks[(name, order.id)] += 1
            try:
                return await hook(conn, order, *rest)
            finally:
                rec.depth -= 1
        return run

    monkeypatch.setitem(line_kinds._KINDS, real.name, line_kinds.LineKind(
        real.name, **{name: watched(name, getattr(real, name)) for name in HOOKS}))

    def spied(name, move):
        async def run(conn, order_or_id, *args, **kwargs):
            order_id = order_or_id if isinstance(order_or_id, int) else order_or_id.id
            rec.moves.append((name, order_id, rec.depth))
            return await move(conn, order_or_id, *args, **kwargs)
        return run

    # Wherever a move is called from: the room's contract (other rooms) and the stage modules (the orders room).
    for module in (orders, fulfilment, order_refunds):
        for name in ORDER_MOVES:
            if hasattr(module, name):
                monkeypatch.setattr(module, name, spied(name, getattr(module, name)))
    return rec


async def apply_payment_only(order: Order) -> None:
    """WeChat Pay confirms the payment; the paid-order job has not run yet."""
    gateway = default_gateway()
    trade = TradeState(out_trade_no=order.out_trade_no, trade_state="SUCCESS", mchid=gateway.mchid,
                       appid=gateway.appid, transaction_id="4200" + secrets.token_hex(12), total_fen=order.total_fen)
    async with transaction() as conn:
        outcome = await orders.apply_payment(conn, trade, expected_mchid=gateway.mchid,
                                             expected_appid=gateway.appid, source="test")
    assert outcome == NotificationOutcome.applied


async def open_group(campaign, sku, leader=None):
    leader = leader or await make_customer()
    async with transaction() as conn:
        group, order, _ = await groups.open_group(conn, leader.id, campaign.id, sku.id)
    return group, order


async def join(group_id: int) -> Order:
    async with transaction() as conn:
        _, order, _ = await groups.join_group(conn, (await make_customer()).id, group_id)
    return order


async def test_a_paid_category_purchase_is_fulfilled_once_by_the_orders_room(recorder):
    campaign, sku = await make_campaign(CampaignKind.category)
    async with transaction() as conn:
        order, entry = await groups.purchase(conn, (await make_customer()).id, campaign.id, sku.id, 1)
    await pay(order)
    assert (await Order.get(id=order.id)).status == OrderStatus.fulfilled
    assert (await CampaignEntry.get(id=entry.id)).status == EntryStatus.fulfilled
    assert recorder.fulfilled(order.id) == [0]
    assert recorder.hooks[("on_paid", order.id)] == 1 and recorder.deepest == 1


async def test_the_seat_that_fills_the_group_delivers_every_member_from_outside_the_hooks(recorder):
    campaign, sku = await make_campaign(group_size=3)
    group, leader_order = await open_group(campaign, sku)
    await pay(leader_order)
    members = [await join(group.id) for _ in range(2)]
    for order in members:
        await pay(order)
    assert (await Group.get(id=group.id)).status == GroupStatus.succeeded
    for order in (leader_order, *members):
        assert (await Order.get(id=order.id)).status == OrderStatus.fulfilled
        assert recorder.fulfilled(order.id) == [0], recorder.moves
        assert recorder.hooks[("on_paid", order.id)] == 1
    assert recorder.deepest == 1


async def test_a_payment_after_the_group_failed_is_refunded_once_with_no_hook_inside_another(recorder):
    real_now = clock.now()
    clock.set_now(real_now - timedelta(minutes=90))
    campaign, sku = await make_campaign(group_size=3, stock=10)
    group, leader_order = await open_group(campaign, sku)
    await pay(leader_order)
    late = await join(group.id)
    clock.set_now(None)
    async with transaction() as conn:
        assert await groups.settle_group(conn, group.id) == "failed"
    assert recorder.refunds(leader_order.id) == [0]
    await pay(late)
    assert recorder.refunds(late.id) == [0], recorder.moves
    assert (await Refund.get(order_id=late.id)).reason == "group_closed"
    assert recorder.hooks[("on_paid", late.id)] == 1 and recorder.hooks[("on_refund_requested", late.id)] == 1
    assert recorder.deepest == 1


async def test_a_leader_refunded_before_the_paid_job_fails_the_group_and_the_friend_is_refunded_from_outside(
    recorder,
):
    campaign, sku = await make_campaign(group_size=3, stock=10)
    group, leader_order = await open_group(campaign, sku)
    await apply_payment_only(leader_order)
    friend_order = await join(group.id)
    await pay(friend_order)
    async with transaction() as conn:
        await orders.staff_refund(conn, leader_order.id, reason="customer_request", amount_fen=None,
                                  idempotency_key=uuid.uuid4().hex)
    async with transaction() as conn:
        assert await orders.handle_paid_order(conn, leader_order.id)
    assert (await Group.get(id=group.id)).status == GroupStatus.failed
    assert (await Refund.get(order_id=friend_order.id)).reason == "group_failed"
    assert recorder.refunds(friend_order.id) == [0], recorder.moves
    assert recorder.hooks[("release", leader_order.id)] == 1
    assert recorder.hooks[("on_refund_requested", friend_order.id)] == 1
    assert recorder.deepest == 1
