"""Refunds WeChat Pay ends without paying them (CLOSED, ABNORMAL, refused): the money never left, so the amount
stops being reserved on the order (once, whichever of the notification and the query tells us first) and what
asking for the refund took comes back (a package card's voided sessions)."""

from __future__ import annotations

import asyncio
import uuid

from orders import payments
from orders.models import Order, Refund, RefundStatus
from orders.product_models import PackageCard, PackageSession
from tests.booking.factories import make_branch
from tests.factories import customer_headers, make_customer, make_staff, staff_headers
from tests.orders.factories import run_jobs
from tests.orders.shop_factories import assert_ledgers_hold, make_product

NOTIFY = "/payments/wechat/notify"
REFUND_NOTIFY = "/payments/wechat/refund-notify"


def gateway_of(client):
    return client._transport.app.state.payment_gateway  # the live adapter the `wechatpay` fixture installed


async def two_courses_paid(client, wechatpay, redis):
    """Two ¥90 course cards of three sessions each, bought in one order paid by WeChat Pay."""
    customer = await make_customer()
    course = await make_product("course", price_fen=9_000, sessions=3)
    bought = await client.post("/app/orders", json={"items": [{"product_id": course.id, "quantity": 2}]},
                               headers=customer_headers(customer))
    assert bought.status_code == 201, bought.text
    order = bought.json()
    headers, body = wechatpay.notification("TRANSACTION.SUCCESS",
                                           wechatpay.transaction_resource(order["out_trade_no"], 18_000))
    assert (await client.post(NOTIFY, content=body, headers=headers)).status_code == 204
    await run_jobs(redis)
    cards = await PackageCard.filter(order_id=order["id"]).order_by("id")
    assert len(cards) == 2
    return customer, order, cards


async def card_refund(client, finance, card_id: int, key: str):
    return await client.post(f"/admin/package-cards/{card_id}/refunds",
                             headers=staff_headers(finance) | {"Idempotency-Key": key})


async def closed_notification(client, wechatpay, out_refund_no: str):
    headers, body = wechatpay.notification(
        "REFUND.CLOSED", wechatpay.refund_resource(out_refund_no, status="CLOSED"), original_type="refund")
    return await client.post(REFUND_NOTIFY, content=body, headers=headers)


async def test_a_card_refund_closed_at_wechat_frees_its_amount_and_gives_the_sessions_back(client, wechatpay, redis):
    customer, order, (card, other) = await two_courses_paid(client, wechatpay, redis)
    finance = await make_staff("finance")
    wechatpay.refund_processing_queries = 99  # WeChat Pay keeps it PROCESSING until it says otherwise
    key = uuid.uuid4().hex
    asked = await card_refund(client, finance, card.id, key)
    assert asked.status_code == 201 and asked.json()["amount_fen"] == 9_000, asked.text
    refund = await Refund.get(id=asked.json()["refund_id"])
    assert (await Order.get(id=order["id"])).refund_reserved_fen == 9_000
    assert await payments.push_refund(gateway_of(client), refund.id) == RefundStatus.processing
    assert (await closed_notification(client, wechatpay, refund.out_refund_no)).status_code == 204

    assert (await Refund.get(id=refund.id)).status == RefundStatus.closed
    current = await Order.get(id=order["id"])
    assert (current.refund_reserved_fen, current.refunded_fen, current.status) == (0, 0, "fulfilled")
    assert (await PackageCard.get(id=card.id)).status == "active"
    sessions = await PackageSession.filter(card_id=card.id)
    assert all(s.refunded_at is None for s in sessions)
    # The same key still answers its (closed) refund; nothing is asked twice.
    again = await card_refund(client, finance, card.id, key)
    assert again.status_code == 200 and again.json()["refund_id"] == refund.id, again.text
    # The sessions are redeemable again.
    branch, desk = await make_branch(), await make_staff("front_desk")
    redeemed = await client.post("/admin/package-cards/redeem", json={"code": card.code, "branch_id": branch.id},
                                 headers=staff_headers(desk))
    assert redeemed.status_code == 200, redeemed.text
    # And the card's unused sessions can be refunded again, through WeChat Pay as the first time.
    second = await card_refund(client, finance, card.id, uuid.uuid4().hex)
    assert second.status_code == 201 and second.json()["amount_fen"] == 6_000, second.text
    second_refund = await Refund.get(id=second.json()["refund_id"])
    assert second_refund.wechat_fen is None  # all of it through WeChat Pay
    wechatpay.refund_processing_queries = 0
    assert await payments.push_refund(gateway_of(client), second_refund.id) == RefundStatus.processing
    assert await payments.push_refund(gateway_of(client), second_refund.id) == RefundStatus.succeeded
    current = await Order.get(id=order["id"])
    assert (current.refund_reserved_fen, current.refunded_fen) == (6_000, 6_000)
    assert (await PackageCard.get(id=card.id)).status == "refunded"
    assert all(s.refunded_at is None for s in await PackageSession.filter(card_id=other.id))
    await assert_ledgers_hold([customer.id])


async def test_a_full_refund_refused_for_good_gives_the_order_and_its_sessions_back(client, wechatpay, redis):
    customer, order, cards = await two_courses_paid(client, wechatpay, redis)
    finance = await make_staff("finance")
    asked = await client.post(f"/admin/orders/{order['id']}/refunds", json={"reason": "customer_request"},
                              headers=staff_headers(finance) | {"Idempotency-Key": uuid.uuid4().hex})
    assert asked.status_code == 201, asked.text
    assert (await Order.get(id=order["id"])).status == "refunding"
    wechatpay.refund_refusal = "INVALID_REQUEST"
    assert await payments.push_refund(gateway_of(client), asked.json()["id"]) == RefundStatus.failed
    current = await Order.get(id=order["id"])
    assert (current.refund_reserved_fen, current.status) == (0, "fulfilled")
    for card in cards:
        assert (await PackageCard.get(id=card.id)).status == "active"
        assert all(s.refunded_at is None for s in await PackageSession.filter(card_id=card.id))
    # Asked again, the refund goes through WeChat Pay again (the refused one took nothing from it).
    wechatpay.refund_refusal = None
    again = await client.post(f"/admin/orders/{order['id']}/refunds", json={"reason": "customer_request"},
                              headers=staff_headers(finance) | {"Idempotency-Key": uuid.uuid4().hex})
    assert again.status_code == 201 and again.json()["amount_fen"] == 18_000, again.text
    assert (await Refund.get(id=again.json()["id"])).wechat_fen is None
    assert (await Order.get(id=order["id"])).status == "refunding"
    await assert_ledgers_hold([customer.id])


async def test_the_closed_notification_and_the_query_racing_free_the_amount_once(client, wechatpay, redis):
    customer, order, (card, other) = await two_courses_paid(client, wechatpay, redis)
    finance = await make_staff("finance")
    wechatpay.refund_processing_queries = 99
    refunds = []
    for each in (card, other):
        asked = await card_refund(client, finance, each.id, uuid.uuid4().hex)
        assert asked.status_code == 201, asked.text
        refunds.append(await Refund.get(id=asked.json()["refund_id"]))
    for refund in refunds:
        assert await payments.push_refund(gateway_of(client), refund.id) == RefundStatus.processing
    closing, standing = refunds
    assert (await Order.get(id=order["id"])).refund_reserved_fen == 18_000
    wechatpay.refunds[closing.out_refund_no].status = "CLOSED"
    results = await asyncio.gather(
        *[closed_notification(client, wechatpay, closing.out_refund_no) for _ in range(8)],
        *[payments.push_refund(gateway_of(client), closing.id) for _ in range(8)])
    assert all(r.status_code == 204 for r in results[:8]), [r.text for r in results[:8]]
    assert set(results[8:]) == {RefundStatus.closed}
    current = await Order.get(id=order["id"])
    # Released once: the other card's refund stays reserved.
    assert (current.refund_reserved_fen, current.status) == (9_000, "fulfilled")
    assert all(s.refunded_at is None for s in await PackageSession.filter(card_id=card.id))
    assert all(s.refunded_at is not None for s in await PackageSession.filter(card_id=other.id))
    await assert_ledgers_hold([customer.id])
