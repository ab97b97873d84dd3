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


async def success_notification(client, wechatpay, out_refund_no: str):
    headers, body = wechatpay.notification(
        "REFUND.SUCCESS", wechatpay.refund_resource(out_refund_no, status="SUCCESS"), original_type="refund")
    return await client.post(REFUND_NOTIFY, content=body, headers=headers)


async def abnormal_card_refund(client, wechatpay, finance, card) -> Refund:
    wechatpay.refund_processing_queries = 99
    asked = await card_refund(client, finance, card.id, uuid.uuid4().hex)
    assert asked.status_code == 201, asked.text
    refund = await Refund.get(id=asked.json()["refund_id"])
    assert await payments.push_refund(gateway_of(client), refund.id) == RefundStatus.processing
    wechatpay.refunds[refund.out_refund_no].status = "ABNORMAL"
    assert await payments.push_refund(gateway_of(client), refund.id) == RefundStatus.abnormal
    return refund


async def test_an_abnormal_card_refund_paid_by_hand_later_is_recorded_and_takes_the_sessions_again(
        client, wechatpay, redis):
    customer, order, (card, other) = await two_courses_paid(client, wechatpay, redis)
    finance = await make_staff("finance")
    refund = await abnormal_card_refund(client, wechatpay, finance, card)
    assert (await Order.get(id=order["id"])).refund_reserved_fen == 0
    assert all(s.refunded_at is None for s in await PackageSession.filter(card_id=card.id))
    # Finance pays it out by hand in the merchant platform: WeChat Pay says SUCCESS (and says it again).
    wechatpay.refunds[refund.out_refund_no].status = "SUCCESS"
    answers = await asyncio.gather(*[success_notification(client, wechatpay, refund.out_refund_no) for _ in range(6)])
    assert [a.status_code for a in answers] == [204] * 6, [a.text for a in answers]
    assert (await Refund.get(id=refund.id)).status == RefundStatus.succeeded
    current = await Order.get(id=order["id"])
    assert (current.refund_reserved_fen, current.refunded_fen, current.status) == (9_000, 9_000, "fulfilled")
    assert (await PackageCard.get(id=card.id)).status == "refunded"
    assert all(s.refunded_at is not None for s in await PackageSession.filter(card_id=card.id))
    assert all(s.refunded_at is None for s in await PackageSession.filter(card_id=other.id))
    await assert_ledgers_hold([customer.id])


async def test_sessions_an_abnormal_refund_gave_back_are_not_refunded_again_before_it_is_settled(
        client, wechatpay, redis):
    # Refunding card A again while its ABNORMAL refund could still be paid by hand would pay A twice: the
    # late SUCCESS found no session carrying its id and was confirmed anyway, leaving card B redeemable too.
    customer, order, (card, other) = await two_courses_paid(client, wechatpay, redis)
    finance = await make_staff("finance")
    refund = await abnormal_card_refund(client, wechatpay, finance, card)
    again = await card_refund(client, finance, card.id, uuid.uuid4().hex)
    assert again.status_code == 409 and again.json()["code"] == "earlier_refund_abnormal", again.text
    assert again.json()["detail"]["refund_id"] == refund.id
    assert await Refund.filter(order_id=order["id"]).count() == 1
    wechatpay.refunds[refund.out_refund_no].status = "SUCCESS"
    assert (await success_notification(client, wechatpay, refund.out_refund_no)).status_code == 204
    current = await Order.get(id=order["id"])
    assert (current.refund_reserved_fen, current.refunded_fen) == (9_000, 9_000)
    assert all(s.refunded_at is not None for s in await PackageSession.filter(card_id=card.id))
    assert all(s.refunded_at is None for s in await PackageSession.filter(card_id=other.id))
    await assert_ledgers_hold([customer.id])


async def test_an_abnormal_refund_paid_by_hand_after_its_money_was_asked_again_stays_for_finance(
        client, wechatpay, redis):
    customer, order, (card, other) = await two_courses_paid(client, wechatpay, redis)
    finance = await make_staff("finance")
    refund = await abnormal_card_refund(client, wechatpay, finance, card)
    everything = await client.post(f"/admin/orders/{order['id']}/refunds", json={"reason": "customer_request"},
                                   headers=staff_headers(finance) | {"Idempotency-Key": uuid.uuid4().hex})
    assert everything.status_code == 201 and everything.json()["amount_fen"] == 18_000, everything.text
    wechatpay.refunds[refund.out_refund_no].status = "SUCCESS"
    assert (await success_notification(client, wechatpay, refund.out_refund_no)).status_code == 204
    late = await Refund.get(id=refund.id)
    assert late.status == RefundStatus.abnormal and "asked for again" in late.last_error
    current = await Order.get(id=order["id"])
    assert (current.refund_reserved_fen, current.refunded_fen, current.status) == (18_000, 0, "refunding")
    await assert_ledgers_hold([customer.id])


async def test_an_abnormal_topup_refund_paid_by_hand_later_takes_the_principal_and_bonus_again(
        client, wechatpay, redis):
    from orders.stored_value import balance_of
    from tests.orders.test_topup_refunds import ask_refund, topped_up

    customer, order = await topped_up(client, wechatpay, redis)
    wechatpay.refund_processing_queries = 99
    refund = await ask_refund(client, order["id"], 3_000)
    assert await payments.push_refund(gateway_of(client), refund.id) == RefundStatus.processing
    wechatpay.refunds[refund.out_refund_no].status = "ABNORMAL"
    assert await payments.push_refund(gateway_of(client), refund.id) == RefundStatus.abnormal
    assert await balance_of(customer.id) == (5_000, 1_000)
    wechatpay.refunds[refund.out_refund_no].status = "SUCCESS"
    for _ in range(2):
        assert (await success_notification(client, wechatpay, refund.out_refund_no)).status_code == 204
    assert (await Refund.get(id=refund.id)).status == RefundStatus.succeeded
    assert await balance_of(customer.id) == (2_000, 0)
    assert (await Order.get(id=order["id"])).refunded_fen == 3_000
    # What is left of the principal is still refundable, and no more.
    too_much = await client.post(f"/admin/orders/{order['id']}/refunds",
                                 json={"reason": "customer_request", "amount_fen": 2_001},
                                 headers=staff_headers(await make_staff("finance")) | {"Idempotency-Key": "k-" + uuid.uuid4().hex})
    assert too_much.status_code == 422, too_much.text
    await assert_ledgers_hold([customer.id])


async def test_an_abnormal_refund_from_before_the_release_is_not_reserved_twice_when_paid(client, wechatpay, redis):
    """A refund that went ABNORMAL before refunds released their amount still holds it on the order: paid by
    hand later, it is confirmed without reserving its amount a second time."""
    customer, order, (card, other) = await two_courses_paid(client, wechatpay, redis)
    finance = await make_staff("finance")
    refund = await abnormal_card_refund(client, wechatpay, finance, card)
    await Order.filter(id=order["id"]).update(refund_reserved_fen=9_000)  # as the previous release left it
    wechatpay.refunds[refund.out_refund_no].status = "SUCCESS"
    assert (await success_notification(client, wechatpay, refund.out_refund_no)).status_code == 204
    assert (await Refund.get(id=refund.id)).status == RefundStatus.succeeded
    current = await Order.get(id=order["id"])
    assert (current.refund_reserved_fen, current.refunded_fen) == (9_000, 9_000)
    await assert_ledgers_hold([customer.id])
