"""Refunds of package and course cards through the API: what each card is worth when a coupon covers only some
lines, a card's refund key that belongs to another card, and partial order refunds of orders holding cards."""

from __future__ import annotations

import uuid

from orders.models import Order, Refund
from orders.product_models import PackageCard, PackageSession
from tests.factories import customer_headers, make_customer, make_staff, staff_headers
from tests.orders.factories import run_jobs
from tests.orders.shop_factories import assert_ledgers_hold, give_coupon, make_product, make_template


async def bought_and_paid(client, redis, customer, body) -> dict:
    bought = await client.post("/app/orders", json=body, headers=customer_headers(customer))
    assert bought.status_code == 201, bought.text
    order = bought.json()
    paid = await client.post(f"/sandbox/payments/{order['out_trade_no']}/succeed", headers=customer_headers(customer))
    assert paid.status_code == 200 and paid.json()["outcome"] == "applied", paid.text
    await run_jobs(redis)
    return order


async def card_refund(client, finance, card_id: int, key: str):
    return await client.post(f"/admin/package-cards/{card_id}/refunds",
                             headers=staff_headers(finance) | {"Idempotency-Key": key})


async def test_a_key_used_for_one_card_is_refused_for_another_card_of_the_same_order(client, redis):
    customer = await make_customer()
    course = await make_product("course", price_fen=9000, sessions=3)
    order = await bought_and_paid(client, redis, customer, {"items": [{"product_id": course.id, "quantity": 2}]})
    first_card, second_card = await PackageCard.filter(order_id=order["id"]).order_by("id")
    finance = await make_staff("finance")
    key = uuid.uuid4().hex
    first = await card_refund(client, finance, first_card.id, key)
    assert first.status_code == 201 and first.json()["amount_fen"] == 9000, first.text
    # The same key on the other card (same order, same reason, same "amount asked") is not a replay.
    reused = await card_refund(client, finance, second_card.id, key)
    assert reused.status_code == 409, reused.text
    assert reused.json()["code"] == "idempotency_key_reused"
    assert reused.json()["detail"]["field"] == "Idempotency-Key"
    # Nothing changed: the second card keeps its sessions, one refund exists.
    second_sessions = await PackageSession.filter(card_id=second_card.id)
    assert all(s.refunded_at is None and s.refund_id is None for s in second_sessions)
    assert (await PackageCard.get(id=second_card.id)).status == "active"
    assert await Refund.filter(order_id=order["id"]).count() == 1
    # The key on its own card is still a replay of the same refund, saying how many sessions it refunded.
    again = await card_refund(client, finance, first_card.id, key)
    assert again.status_code == 200 and again.json()["refund_id"] == first.json()["refund_id"]
    assert again.json()["sessions_refunded"] == 3
    # The second card refunded under its own key.
    own = await card_refund(client, finance, second_card.id, uuid.uuid4().hex)
    assert own.status_code == 201 and own.json()["amount_fen"] == 9000, own.text
    await run_jobs(redis)
    assert (await Order.get(id=order["id"])).refunded_fen == 18000
    await assert_ledgers_hold([customer.id])


async def test_a_coupon_for_one_course_lowers_only_that_course_cards_value(client, redis):
    """A coupon scoped to one product: its discount lands on that product's card, so each card's sessions are
    worth what was paid for them and a refund of the other card's unused sessions gives its full price back."""
    customer = await make_customer()
    covered = await make_product("course", price_fen=10_000, sessions=2)
    other = await make_product("course", price_fen=9_000, sessions=3)
    template = await make_template("cash_off", value_fen=3_000, threshold_fen=0, product_ids=[covered.id])
    coupon = await give_coupon(customer.id, template.id)
    order = await bought_and_paid(client, redis, customer, {
        "items": [{"product_id": covered.id}, {"product_id": other.id}], "coupon_id": coupon.id})
    assert order["coupon_fen"] == 3_000 and order["total_fen"] == 19_000
    cards = {c.product_id: c for c in await PackageCard.filter(order_id=order["id"])}
    assert cards[covered.id].paid_fen == 7_000 and cards[other.id].paid_fen == 9_000
    values = [s.value_fen for s in await PackageSession.filter(card_id=cards[other.id].id).order_by("seq")]
    assert values == [3_000, 3_000, 3_000]
    finance = await make_staff("finance")
    refunded = await card_refund(client, finance, cards[other.id].id, uuid.uuid4().hex)
    assert refunded.status_code == 201 and refunded.json()["amount_fen"] == 9_000, refunded.text
    await assert_ledgers_hold([customer.id])


async def test_a_free_service_coupon_makes_only_its_service_card_free(client, redis):
    customer = await make_customer()
    free = await make_product("service", price_fen=5_000)
    course = await make_product("course", price_fen=12_000, sessions=3)
    coupon = await give_coupon(customer.id, (await make_template("free_service", free_product_id=free.id)).id)
    order = await bought_and_paid(client, redis, customer, {
        "items": [{"product_id": course.id}, {"product_id": free.id}], "coupon_id": coupon.id})
    assert order["coupon_fen"] == 5_000
    cards = {c.product_id: c for c in await PackageCard.filter(order_id=order["id"])}
    assert cards[free.id].paid_fen == 0 and cards[course.id].paid_fen == 12_000


async def order_refund(client, finance, order_id: int, amount_fen: int | None = None):
    body = {"reason": "customer_request"} | ({"amount_fen": amount_fen} if amount_fen else {})
    return await client.post(f"/admin/orders/{order_id}/refunds", json=body,
                             headers=staff_headers(finance) | {"Idempotency-Key": uuid.uuid4().hex})


async def test_a_partial_order_refund_is_refused_while_its_cards_hold_unused_sessions(client, redis):
    """Money of unused sessions leaves through the card refund, which marks the sessions it pays for; a partial
    order refund would let the money go and every session stay redeemable."""
    from tests.booking.factories import make_branch

    customer = await make_customer()
    course = await make_product("course", price_fen=9_000, sessions=3)
    cream = await make_product("product", price_fen=2_000)
    order = await bought_and_paid(client, redis, customer, {
        "items": [{"product_id": course.id}, {"product_id": cream.id}]})
    card = await PackageCard.get(order_id=order["id"])
    finance = await make_staff("finance")
    refused = await order_refund(client, finance, order["id"], 3_000)
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "partial_refund_of_package_cards"
    assert refused.json()["detail"]["field"] == "amount_fen" and refused.json()["detail"]["card_ids"] == [card.id]
    assert refused.json()["detail"]["cards_created"] is True
    assert await Refund.filter(order_id=order["id"]).count() == 0
    assert (await Order.get(id=order["id"])).refund_reserved_fen == 0
    # Once every session is used, a partial refund (a goodwill refund, the cream) is finance's to give.
    branch = await make_branch()
    desk = await make_staff("front_desk")
    for _ in range(3):
        redeemed = await client.post("/admin/package-cards/redeem", json={"code": card.code, "branch_id": branch.id},
                                     headers=staff_headers(desk))
        assert redeemed.status_code == 200, redeemed.text
    allowed = await order_refund(client, finance, order["id"], 2_000)
    assert allowed.status_code == 201, allowed.text


async def test_the_whole_order_or_each_card_is_refunded_with_the_sessions_it_pays_for(client, redis):
    customer = await make_customer()
    course = await make_product("course", price_fen=9_000, sessions=3)
    order = await bought_and_paid(client, redis, customer, {"items": [{"product_id": course.id, "quantity": 2}]})
    first, second = await PackageCard.filter(order_id=order["id"]).order_by("id")
    finance = await make_staff("finance")
    per_card = await card_refund(client, finance, first.id, uuid.uuid4().hex)  # a partial refund of the order
    assert per_card.status_code == 201 and per_card.json()["amount_fen"] == 9_000, per_card.text
    # Everything left (an amount equal to it, too) is a full refund: the other card's sessions are voided.
    rest = await order_refund(client, finance, order["id"], 9_000)
    assert rest.status_code == 201, rest.text
    assert not await PackageSession.filter(card_id=second.id, refunded_at=None).exists()
    await run_jobs(redis)
    assert (await Order.get(id=order["id"])).refunded_fen == 18_000
    await assert_ledgers_hold([customer.id])


async def test_a_partial_order_refund_is_refused_before_the_paid_job_has_made_the_cards(client, redis):
    customer = await make_customer()
    course = await make_product("course", price_fen=9_000, sessions=3)
    bought = await client.post("/app/orders", json={"items": [{"product_id": course.id}]},
                               headers=customer_headers(customer))
    paid = await client.post(f"/sandbox/payments/{bought.json()['out_trade_no']}/succeed",
                             headers=customer_headers(customer))
    assert paid.json()["outcome"] == "applied", paid.text
    finance = await make_staff("finance")
    refused = await order_refund(client, finance, bought.json()["id"], 3_000)  # the paid-order job has not run
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "partial_refund_of_package_cards"
    assert refused.json()["detail"]["cards_created"] is False
    await run_jobs(redis)
    assert await PackageSession.filter(card__order_id=bought.json()["id"], refunded_at=None).count() == 3


async def test_the_same_card_refund_sent_many_times_at_once_is_one_refund(client, redis):
    import asyncio

    customer = await make_customer()
    course = await make_product("course", price_fen=9_000, sessions=3)
    order = await bought_and_paid(client, redis, customer, {"items": [{"product_id": course.id}]})
    card = await PackageCard.get(order_id=order["id"])
    finance = await make_staff("finance")
    key = uuid.uuid4().hex
    answers = await asyncio.gather(*[card_refund(client, finance, card.id, key) for _ in range(10)])
    assert sorted(a.status_code for a in answers) == [200] * 9 + [201], [a.text for a in answers]
    assert len({a.json()["refund_id"] for a in answers}) == 1
    assert all(a.json()["sessions_refunded"] == 3 for a in answers)
    assert await Refund.filter(order_id=order["id"]).count() == 1
