"""Refunds racing the paid-order job and a settling group, found by tests/test_invariants_stateful.py: finance
refunds an order whose `orders.order_paid` job has not run yet (the jobs then run in either order or side by
side), a member is refunded from an open group, a group fails while the paid job commits. Then: a full refund
asked before the paid-order job that WeChat Pay ends unpaid, and calls that read before taking the order lock."""

from __future__ import annotations

import asyncio
import contextvars
import uuid

import pytest
from arq import Retry

from campaigns.groupbuy import groups
from campaigns.groupbuy.models import CampaignEntry, CampaignKind, CampaignSku, EntryStatus, Group, GroupStatus
from orders import payments, service, tasks
from orders.gateway import default_gateway
from orders.models import Order, OrderStatus, Refund, RefundStatus
from kernel.db import transaction
from points_mall.models import Consumption
from tests.orders.factories import assert_refunded_in_full_by_a_second_refund, deadlock, run_jobs
from tests.campaigns.groupbuy_factories import make_campaign
from tests.factories import blocked_on, customer_headers, make_customer, make_staff, staff_headers


@pytest.fixture(autouse=True)
async def drained(redis):
    """These tests call the jobs themselves; the jobs their steps also queued run here, so none is left behind."""
    yield
    await run_jobs(redis)


async def paid_leader_seat(client) -> tuple[Order, CampaignEntry]:
    """A leader opens a group and pays; the paid-order job has not run."""
    campaign, sku = await make_campaign(group_size=3, stock=5)
    leader = await make_customer()
    opened = await client.post("/app/groups", json={"campaign_id": campaign.id, "sku_id": sku.id},
                               headers=customer_headers(leader))
    order = await Order.get(id=opened.json()["order_id"])
    paid = await client.post(f"/sandbox/payments/{order.out_trade_no}/succeed", headers=customer_headers(leader))
    assert paid.json()["outcome"] == "applied"
    return order, await CampaignEntry.get(order_id=order.id)


async def staff_refund(client, order_id: int, amount_fen: int | None = None) -> Refund:
    finance = await make_staff("finance")
    body = {"reason": "customer_request"} | ({"amount_fen": amount_fen} if amount_fen else {})
    response = await client.post(f"/admin/orders/{order_id}/refunds", json=body,
                                 headers=staff_headers(finance) | {"Idempotency-Key": uuid.uuid4().hex})
    assert response.status_code == 201, response.text
    return await Refund.get(id=response.json()["id"])


async def assert_nothing_kept(order: Order, entry: CampaignEntry) -> None:
    """Refunded in full before anything was delivered: no seat, no stock, no open group, no consumption."""
    order = await Order.get(id=order.id)
    entry = await CampaignEntry.get(id=entry.id)
    group = await Group.get(id=entry.group_id)
    sku = await CampaignSku.get(id=entry.sku_id)
    assert order.status == OrderStatus.refunded and order.refunded_fen == order.total_fen
    assert entry.status == EntryStatus.released, entry.status
    assert group.status == GroupStatus.failed and group.paid_count == 0
    assert sku.stock_left == sku.stock_total and sku.sold_units == 0
    consumption = await Consumption.get_or_none(external_ref=f"order:{order.id}")
    assert consumption is None or consumption.refunded_fen == consumption.amount_fen


async def test_full_refund_confirmed_before_the_paid_job_gives_the_seat_back(client):
    order, entry = await paid_leader_seat(client)
    refund = await staff_refund(client, order.id)
    assert await tasks.send_refund({}, refund.id) == "succeeded"
    await tasks.order_paid({}, order.id)
    await assert_nothing_kept(order, entry)


async def test_paid_job_after_a_full_refund_was_asked_opens_no_group(client):
    order, entry = await paid_leader_seat(client)
    refund = await staff_refund(client, order.id)
    await tasks.order_paid({}, order.id)  # the refund is asked for, not yet confirmed
    assert await tasks.send_refund({}, refund.id) == "succeeded"
    await assert_nothing_kept(order, entry)


async def test_partial_refund_confirmed_before_the_paid_job_comes_off_the_consumption(client):
    order, entry = await paid_leader_seat(client)
    refund = await staff_refund(client, order.id, amount_fen=2_000)
    assert await tasks.send_refund({}, refund.id) == "succeeded"
    await tasks.order_paid({}, order.id)
    consumption = await Consumption.get(external_ref=f"order:{order.id}")
    assert (consumption.amount_fen, consumption.refunded_fen) == (order.total_fen, 2_000)
    assert (await CampaignEntry.get(id=entry.id)).status == EntryStatus.paid  # a partial refund keeps the seat
    assert (await Group.get(id=entry.group_id)).status == GroupStatus.open



async def test_refund_confirmed_while_the_paid_job_commits_finds_the_consumption(client):
    """The refund job used to read before it waited for the order row, so after the paid job committed it
    still saw its old snapshot: no consumption, consumption_not_found, and the job died."""
    order, entry = await paid_leader_seat(client)
    refund = await staff_refund(client, order.id, amount_fen=2_000)
    outside = contextvars.copy_context()  # the refund job's own connection, not the paid job's transaction
    async with transaction() as conn:
        await service.handle_paid_order(conn, order.id)  # the paid job, not committed yet
        pushing = asyncio.create_task(payments.push_refund(default_gateway(), refund.id), context=outside)
        for _ in range(500):
            if await blocked_on("shop_order") or pushing.done():
                break
            await asyncio.sleep(0.01)
        assert not pushing.done(), pushing  # the refund's transaction waits for the order row
    assert await pushing == RefundStatus.succeeded
    consumption = await Consumption.get(external_ref=f"order:{order.id}")
    assert (consumption.amount_fen, consumption.refunded_fen) == (order.total_fen, 2_000)


async def test_a_member_refunded_before_the_group_settles_frees_the_seat(client, redis):
    """Refunding a paid member of an open group used to keep their seat and their count: the group could then
    'succeed' with a member short (and the leader's refund kept an open group with nobody paid)."""
    order, entry = await paid_leader_seat(client)
    await tasks.order_paid({}, order.id)
    friend = await make_customer()
    joined = await client.post(f"/app/groups/{entry.group_id}/join", headers=customer_headers(friend))
    friend_order = await Order.get(id=joined.json()["order_id"])
    await client.post(f"/sandbox/payments/{friend_order.out_trade_no}/succeed", headers=customer_headers(friend))
    await tasks.order_paid({}, friend_order.id)
    group = await Group.get(id=entry.group_id)
    assert (group.seats_taken, group.paid_count) == (2, 2)

    refund = await staff_refund(client, friend_order.id)
    group = await Group.get(id=entry.group_id)
    assert group.status == GroupStatus.open and (group.seats_taken, group.paid_count) == (1, 1)
    assert await tasks.send_refund({}, refund.id) == "succeeded"
    sku = await CampaignSku.get(id=entry.sku_id)
    assert sku.sold_units == 1 and sku.stock_left == sku.stock_total - 1


async def test_a_group_failing_while_the_paid_job_commits_gives_the_sold_unit_back(client):
    """The failing group's refund read the member's entry from a snapshot taken before the paid job marked it
    paid: the refund won the entry but did not give its sold unit back (sold_units stayed one too high)."""
    order, entry = await paid_leader_seat(client)
    outside = contextvars.copy_context()
    async with transaction() as conn:
        await CampaignEntry.get(id=entry.id).using_db(conn)  # the settling transaction's snapshot: still held
        # The paid job commits on its own connection meanwhile: entry paid, one unit sold.
        await asyncio.create_task(tasks.order_paid({}, order.id), context=outside)
        fresh = await Order.filter(id=order.id).using_db(conn).select_for_update().first()
        await service.request_refund(conn, fresh, amount_fen=fresh.total_fen, reason="group_failed")
    sku = await CampaignSku.get(id=entry.sku_id)
    assert (await CampaignEntry.get(id=entry.id)).status == EntryStatus.refunding
    assert sku.sold_units == 0 and sku.stock_left == sku.stock_total


async def test_paid_job_still_deadlocked_after_its_quick_retries_is_retried_by_arq(client, monkeypatch):
    """Seen once by the state machine: orders.order_paid died on an InnoDB deadlock four times in a row, and
    a failed job is never run again, so the payment's seat, vouchers and points were lost."""
    order, entry = await paid_leader_seat(client)

    async def deadlocked(conn, order_id):
        raise deadlock()

    monkeypatch.setattr(service, "handle_paid_order", deadlocked)
    with pytest.raises(Retry):
        await tasks.order_paid({"job_try": 1}, order.id)
    monkeypatch.undo()
    assert await tasks.order_paid({"job_try": 2}, order.id) is True
    assert (await CampaignEntry.get(id=entry.id)).status == EntryStatus.paid


async def test_many_identical_system_refunds_at_once_make_one_refund(client):
    """A system refund (no Idempotency-Key, one per order and reason) asked by many jobs at once: each job reads
    the order first, as jobs do, then asks; every one gets the same refund and the amount is reserved once."""
    from kernel.db import run_in_transaction
    from tests.orders.factories import make_order

    customer = await make_customer()
    order = await make_order(customer, unit_price_fen=10_000)
    paid = await client.post(f"/sandbox/payments/{order.out_trade_no}/succeed", headers=customer_headers(customer))
    assert paid.json()["outcome"] == "applied", paid.text

    async def ask(conn):
        current = await service.get_order(conn, order.id)  # the job's snapshot starts here, before the lock
        return await service.request_refund(conn, current, amount_fen=3_000, reason="tier_price")

    refunds = await asyncio.gather(*[run_in_transaction(ask) for _ in range(20)], return_exceptions=True)
    assert [r for r in refunds if isinstance(r, BaseException)] == []
    assert len({r.id for r in refunds}) == 1
    assert await Refund.filter(order_id=order.id).count() == 1
    assert (await Order.get(id=order.id)).refund_reserved_fen == 3_000


async def test_different_system_refunds_at_once_never_ask_wechat_for_more_than_it_collected(client, redis):
    """An order paid half by stored value, half by WeChat Pay; eight different system refunds (one per reason) of
    an eighth each, asked at once by jobs that read the order before taking its lock: the WeChat Pay parts add
    up to exactly what WeChat Pay collected and the stored value gets the rest (each refund's split is made from
    every refund committed before it, not from the job's older snapshot)."""
    from kernel.db import run_in_transaction
    from orders.product_models import RefundPart
    from orders.models import refund_wechat_amount
    from tests.orders.shop_factories import give_stored_value, make_product

    customer = await make_customer()
    await give_stored_value(customer.id, 10_000)
    goods = await make_product("product", price_fen=20_000)
    bought = await client.post("/app/orders", json={"items": [{"product_id": goods.id}], "use_stored_value": True},
                               headers=customer_headers(customer))
    assert bought.status_code == 201, bought.text
    assert (bought.json()["stored_value_fen"], bought.json()["wechat_fen"]) == (10_000, 10_000)
    paid = await client.post(f"/sandbox/payments/{bought.json()['out_trade_no']}/succeed",
                             headers=customer_headers(customer))
    assert paid.json()["outcome"] == "applied", paid.text
    order_id = bought.json()["id"]

    async def ask(reason: str):
        async def work(conn):
            current = await service.get_order(conn, order_id)  # the job's snapshot starts here, before the lock
            return await service.request_refund(conn, current, amount_fen=2_500, reason=reason)
        return await run_in_transaction(work)

    refunds = await asyncio.gather(*[ask(f"system_{i}") for i in range(8)], return_exceptions=True)
    assert [r for r in refunds if isinstance(r, BaseException)] == []
    stored = await Refund.filter(order_id=order_id)
    assert len(stored) == 8
    parts = await RefundPart.filter(refund_id__in=[r.id for r in stored])
    assert sum(refund_wechat_amount(r) for r in stored) == 10_000
    assert sum(p.amount_fen for p in parts if p.source == "stored_value") == 10_000
    assert not [p for p in parts if p.source == "points"]
    assert (await Order.get(id=order_id)).refund_reserved_fen == 20_000


# --- a full refund asked before the paid-order job, which then ends unpaid ----------------------------------

async def end_unpaid(refund: Refund, status: str) -> None:
    """WeChat Pay ends the refund without paying it (the refund notification's path, signature aside)."""
    from orders.gateway import RefundResult

    async with transaction() as conn:
        await service.lock_order(conn, order_id=refund.order_id)
        current = await Refund.get(id=refund.id).using_db(conn)
        assert current.status in (RefundStatus.pending, RefundStatus.processing)
        await service.apply_refund_result(
            conn, current, RefundResult(out_refund_no=current.out_refund_no, status=status), source="test")


def refusing_gateway():
    """The sandbox gateway, but WeChat Pay refuses every refund for good (e.g. INVALID_REQUEST)."""
    from orders.gateway import GatewayRefused

    gateway = default_gateway()

    class Refusing(type(gateway)):  # type: ignore[misc]
        async def refund(self, request):
            raise GatewayRefused("INVALID_REQUEST")

    refusing = object.__new__(Refusing)
    refusing.__dict__.update(gateway.__dict__)
    return refusing


async def course_card_paid(client) -> Order:
    """A ¥90 course card of three sessions, paid by WeChat Pay; the paid-order job has not run."""
    from tests.orders.shop_factories import make_product

    customer = await make_customer()
    course = await make_product("course", price_fen=9_000, sessions=3)
    bought = await client.post("/app/orders", json={"items": [{"product_id": course.id}]},
                               headers=customer_headers(customer))
    assert bought.status_code == 201, bought.text
    order = await Order.get(id=bought.json()["id"])
    paid = await client.post(f"/sandbox/payments/{order.out_trade_no}/succeed", headers=customer_headers(customer))
    assert paid.json()["outcome"] == "applied", paid.text
    return order


@pytest.mark.parametrize("end", ["CLOSED", "refused"])
async def test_a_full_refund_that_ends_unpaid_after_the_paid_job_skipped_delivery_delivers_the_card(
    client, redis, end,
):
    """The paid job saw the full refund asked and delivered nothing; the refund then ended unpaid (the money
    stays with the clinic). The order used to read `paid` for good with no card and no consumption; the paid
    job runs again instead and delivers what was bought (finance may still refund it, as any paid order)."""
    from orders.product_models import PackageCard, PackageSession

    order = await course_card_paid(client)
    refund = await staff_refund(client, order.id)
    assert await tasks.order_paid({}, order.id) is True  # the refund is asked for: nothing is delivered
    assert not await PackageCard.filter(order_id=order.id).exists()
    if end == "CLOSED":
        await end_unpaid(refund, "CLOSED")
    else:
        assert await payments.push_refund(refusing_gateway(), refund.id) == RefundStatus.failed
    await run_jobs(redis)
    current = await Order.get(id=order.id)
    assert (current.status, current.refund_reserved_fen, current.refunded_fen) == (OrderStatus.fulfilled, 0, 0)
    card = await PackageCard.get(order_id=order.id)
    assert card.status == "active" and card.paid_fen == 9_000
    assert await PackageSession.filter(card_id=card.id, refunded_at=None, redeemed_at=None).count() == 3
    consumption = await Consumption.get(external_ref=f"order:{order.id}")
    assert (consumption.amount_fen, consumption.refunded_fen) == (9_000, 0)
    assert await Refund.filter(order_id=order.id).count() == 1  # nothing asked again on its own


async def test_an_abnormal_full_refund_before_the_paid_job_delivers_nothing_and_completes_when_paid_by_hand(
    client, redis,
):
    """ABNORMAL is not final: finance pays it out by hand in the merchant platform and WeChat Pay then says
    SUCCESS. Delivering the card meanwhile would hand over the sessions and the money both."""
    from orders.gateway import RefundResult
    from orders.product_models import PackageCard

    order = await course_card_paid(client)
    refund = await staff_refund(client, order.id)
    assert await tasks.order_paid({}, order.id) is True
    await end_unpaid(refund, "ABNORMAL")
    await run_jobs(redis)
    assert not await PackageCard.filter(order_id=order.id).exists()
    assert (await Order.get(id=order.id)).status == OrderStatus.paid
    async with transaction() as conn:
        await service.lock_order(conn, order_id=order.id)
        current = await Refund.get(id=refund.id).using_db(conn)
        await service.apply_refund_result(conn, current, RefundResult(
            out_refund_no=refund.out_refund_no, status="SUCCESS", refund_id="50300"), source="test")
    current = await Order.get(id=order.id)
    assert (current.status, current.refunded_fen) == (OrderStatus.refunded, 9_000)
    assert not await PackageCard.filter(order_id=order.id).exists()


async def test_a_category_purchase_refunded_before_the_paid_job_whose_refund_closes_is_refunded_again(
    client, redis,
):
    """The paid job gave the purchase's stock back (the refund was asked); the refund then closed. The stock may
    be sold since, so the purchase cannot be delivered: its money goes back again, once."""
    campaign, sku = await make_campaign(CampaignKind.category, stock=5)
    customer = await make_customer()
    async with transaction() as conn:
        order, entry = await groups.purchase(conn, customer.id, campaign.id, sku.id, 1)
    paid = await client.post(f"/sandbox/payments/{order.out_trade_no}/succeed", headers=customer_headers(customer))
    assert paid.json()["outcome"] == "applied", paid.text
    refund = await staff_refund(client, order.id)
    assert await tasks.order_paid({}, order.id) is True
    assert (await CampaignEntry.get(id=entry.id)).status == EntryStatus.released
    await end_unpaid(refund, "CLOSED")
    await run_jobs(redis)
    await assert_refunded_in_full_by_a_second_refund(order.id, refund.id)
    assert (await CampaignEntry.get(id=entry.id)).status == EntryStatus.released
    sku = await CampaignSku.get(id=sku.id)
    assert (sku.stock_left, sku.sold_units) == (5, 0)


async def test_a_payment_after_close_whose_refund_closes_is_refunded_again(client, redis):
    """The order closed (its hold, coupon, points and stored value given back) before WeChat Pay's payment landed;
    the automatic refund of that payment then closed at WeChat Pay. The order used to read `paid` for good with
    nothing to deliver; its money is asked back again, once (WeChat Pay's part only, as the first time)."""
    from orders.gateway import TradeState
    from orders.models import NotificationOutcome
    from tests.orders.factories import make_order

    order = await make_order(unit_price_fen=10_000)
    async with transaction() as conn:
        assert await service.close_unpaid(conn, order.id, "expired")
    gateway = default_gateway()
    trade = TradeState(out_trade_no=order.out_trade_no, trade_state="SUCCESS", mchid=gateway.mchid,
                       appid=gateway.appid, transaction_id="4200" + uuid.uuid4().hex[:20], total_fen=10_000)
    async with transaction() as conn:
        assert await service.apply_payment(conn, trade, expected_mchid=gateway.mchid, expected_appid=gateway.appid,
                                           source="test") == NotificationOutcome.paid_after_close
    refund = await Refund.get(order_id=order.id)
    await end_unpaid(refund, "CLOSED")
    await run_jobs(redis)
    current = await Order.get(id=order.id)
    assert (current.status, current.refunded_fen) == (OrderStatus.refunded, 10_000), current.status
    again = await Refund.filter(order_id=order.id).exclude(id=refund.id)
    assert [(r.reason, r.amount_fen, r.status) for r in again] == [(f"again_{refund.id}", 10_000, "succeeded")]


# --- reads before the order lock: the later locked statements decide ------------------------------------------

async def test_a_card_refund_that_read_the_card_before_another_card_refund_committed_pays_nothing_twice(
    client, redis,
):
    """refund_unused reads the card (and so starts its snapshot) before it waits for the order lock. A second
    refund of the same card with another key, blocked on the lock while the first commits, still sees every
    session unused in its snapshot: the conditional session update (current rows) changes none of them, so it
    is refused and nothing is reserved twice."""
    from kernel.db import run_in_transaction
    from orders import package_cards
    from orders.product_models import PackageCard

    order = await course_card_paid(client)
    await tasks.order_paid({}, order.id)
    card = await PackageCard.get(order_id=order.id)
    outside = contextvars.copy_context()

    async def second(conn):
        return await package_cards.refund_unused(conn, card.id, idempotency_key=uuid.uuid4().hex)

    async with transaction() as conn:
        await package_cards.refund_unused(conn, card.id, idempotency_key=uuid.uuid4().hex)
        racing = asyncio.create_task(run_in_transaction(second), context=outside)
        for _ in range(500):
            if await blocked_on("shop_order") or racing.done():
                break
            await asyncio.sleep(0.01)
        assert not racing.done(), racing  # it read the card, then waits for the order row
    with pytest.raises(package_cards.SessionNotRedeemable):
        await racing
    current = await Order.get(id=order.id)
    assert (current.refund_reserved_fen, await Refund.filter(order_id=order.id).count()) == (9_000, 1)


async def test_card_and_order_refunds_all_at_once_never_reserve_more_than_was_paid(client, redis):
    """Twelve refunds of one ¥180 order at once, each on its own connection: eight of card A (each its own key),
    two of card B, two of the whole order. However they interleave, the refunds add up to at most what was
    paid, no session is paid for twice, and every session a refund paid for carries that refund."""
    from kernel.db import run_in_transaction
    from kernel.errors import DomainError
    from orders import package_cards
    from orders.product_models import PackageCard, PackageSession
    from tests.orders.shop_factories import make_product

    customer = await make_customer()
    course = await make_product("course", price_fen=9_000, sessions=3)
    bought = await client.post("/app/orders", json={"items": [{"product_id": course.id, "quantity": 2}]},
                               headers=customer_headers(customer))
    order = await Order.get(id=bought.json()["id"])
    await client.post(f"/sandbox/payments/{order.out_trade_no}/succeed", headers=customer_headers(customer))
    await tasks.order_paid({}, order.id)
    card_a, card_b = await PackageCard.filter(order_id=order.id).order_by("id")

    def card(card_id):
        async def work(conn):
            return await package_cards.refund_unused(conn, card_id, idempotency_key=uuid.uuid4().hex)
        return run_in_transaction(work)

    def whole():
        async def work(conn):
            await conn.execute_query("SELECT 1")  # a read first, as a request does before it refunds
            return await service.staff_refund(conn, order.id, reason="customer_request", amount_fen=None,
                                              idempotency_key=uuid.uuid4().hex)
        return run_in_transaction(work)

    answers = await asyncio.gather(*[card(card_a.id) for _ in range(8)], *[card(card_b.id) for _ in range(2)],
                                   whole(), whole(), return_exceptions=True)
    unexpected = [a for a in answers if isinstance(a, BaseException) and not isinstance(a, DomainError)]
    assert not unexpected, unexpected
    refunds = await Refund.filter(order_id=order.id)
    current = await Order.get(id=order.id)
    assert 1 <= len(refunds) <= 3
    assert current.refund_reserved_fen == sum(r.amount_fen for r in refunds) <= 18_000
    sessions = await PackageSession.filter(card_id__in=[card_a.id, card_b.id])
    for refund in refunds:
        paid_for = [s for s in sessions if s.refund_id == refund.id]
        if refund.reason == "unused_sessions":
            assert sum(s.value_fen for s in paid_for) == refund.amount_fen
    assert all(s.refunded_at is not None for s in sessions)  # every session is paid for, once (one refund id)
    assert sum(s.value_fen for s in sessions) == current.refund_reserved_fen


async def test_a_payment_read_before_the_close_committed_is_not_applied_to_the_closed_order(client, redis):
    """apply_payment reads the order (starting its snapshot: still pending) before its conditional update waits
    for the row the closing transaction holds. Once the close commits, that update matches no row (an UPDATE
    reads the current row, not the snapshot) and the locked re-read sees the close: the money is taken in and
    sent straight back, once; nothing the close gave back is delivered."""
    from kernel.db import run_in_transaction
    from orders.gateway import TradeState
    from orders.models import NotificationOutcome
    from tests.orders.factories import make_order

    order = await make_order(unit_price_fen=10_000)
    gateway = default_gateway()
    trade = TradeState(out_trade_no=order.out_trade_no, trade_state="SUCCESS", mchid=gateway.mchid,
                       appid=gateway.appid, transaction_id="4200" + uuid.uuid4().hex[:20], total_fen=10_000)
    outside = contextvars.copy_context()

    async def pay(conn):
        return await service.apply_payment(conn, trade, expected_mchid=gateway.mchid, expected_appid=gateway.appid,
                                           source="test")

    async with transaction() as conn:
        assert await service.close_unpaid(conn, order.id, "expired")
        paying = asyncio.create_task(run_in_transaction(pay), context=outside)
        for _ in range(500):
            if await blocked_on("shop_order") or paying.done():
                break
            await asyncio.sleep(0.01)
        assert not paying.done(), paying
    assert await paying == NotificationOutcome.paid_after_close
    current = await Order.get(id=order.id)
    assert current.paid_handled_at is None and current.refund_reserved_fen == 10_000
    assert [r.reason for r in await Refund.filter(order_id=order.id)] == ["paid_after_close"]
