"""A catalogue purchase retried with its Idempotency-Key: one order, each source taken once, the same answer in
any state; the key with another body refused; the key kept per customer; old clients without a key unchanged."""

from __future__ import annotations

import asyncio
import uuid

from orders import stored_value
from orders.models import Order
from orders.product_models import Coupon, CouponStatus
from tests.factories import customer_headers, make_customer
from tests.orders.factories import run_jobs
from tests.orders.shop_factories import (
    assert_ledgers_hold,
    give_coupon,
    give_points,
    give_stored_value,
    make_product,
    make_template,
    points_of,
)


def keyed(customer, key: str) -> dict[str, str]:
    return customer_headers(customer) | {"Idempotency-Key": key}


async def customer_with_every_source(price_fen: int = 10000):
    customer = await make_customer()
    product = await make_product("product", price_fen=price_fen)
    coupon = await give_coupon(customer.id, (await make_template("cash_off", value_fen=1000, threshold_fen=0)).id)
    await give_points(customer.id, 2000)
    await give_stored_value(customer.id, 3000, 0)
    body = {"items": [{"product_id": product.id}], "coupon_id": coupon.id, "use_points": True, "max_points": 2000,
            "use_stored_value": True}
    return customer, product, coupon, body


async def test_a_retried_purchase_returns_the_same_order_in_any_state_and_takes_each_source_once(client, redis):
    customer, _, coupon, body = await customer_with_every_source()
    key = uuid.uuid4().hex
    first = await client.post("/app/orders", json=body, headers=keyed(customer, key))
    assert first.status_code == 201, first.text
    order = first.json()
    assert (order["coupon_fen"], order["points_used"], order["stored_value_fen"], order["wechat_fen"]) == \
        (1000, 2000, 3000, 4000)
    # The network dropped the answer; the mini-program sends the same request again (keys in another order,
    # a default spelled out: the same purchase).
    again = await client.post("/app/orders", json={**body, "expected_wechat_fen": None, "items": [
        {"quantity": 1, "product_id": body["items"][0]["product_id"]}]}, headers=keyed(customer, key))
    assert again.status_code == 200, again.text
    assert again.json() == order
    assert await Order.filter(customer_id=customer.id).count() == 1
    assert await stored_value.balance_of(customer.id) == (0, 0) and await points_of(customer.id) == 0
    # Paid, then asked again: the same order as it is now.
    paid = await client.post(f"/sandbox/payments/{order['out_trade_no']}/succeed", headers=customer_headers(customer))
    assert paid.status_code == 200, paid.text
    await run_jobs(redis)
    later = await client.post("/app/orders", json=body, headers=keyed(customer, key))
    assert later.status_code == 200 and later.json()["id"] == order["id"]
    assert later.json()["status"] in ("paid", "fulfilled")
    assert (await Coupon.get(id=coupon.id)).status == CouponStatus.used
    assert await Order.filter(customer_id=customer.id).count() == 1
    await assert_ledgers_hold([customer.id])


async def test_the_key_with_another_body_is_refused_and_changes_nothing(client):
    customer, product, _, body = await customer_with_every_source()
    key = uuid.uuid4().hex
    assert (await client.post("/app/orders", json=body, headers=keyed(customer, key))).status_code == 201
    balances = (await stored_value.balance_of(customer.id), await points_of(customer.id))
    for other in ({**body, "use_points": False}, {**body, "items": [{"product_id": product.id, "quantity": 2}]},
                  {**body, "expected_wechat_fen": 4000}):
        refused = await client.post("/app/orders", json=other, headers=keyed(customer, key))
        assert refused.status_code == 409, refused.text
        assert refused.json()["code"] == "idempotency_key_reused"
        assert refused.json()["detail"]["field"] == "Idempotency-Key"
    assert await Order.filter(customer_id=customer.id).count() == 1
    assert (await stored_value.balance_of(customer.id), await points_of(customer.id)) == balances


async def test_the_key_is_kept_per_customer_and_orders_without_a_key_stay_as_before(client):
    product = await make_product("product", price_fen=500)
    alice, bob = await make_customer(), await make_customer()
    key = uuid.uuid4().hex
    body = {"items": [{"product_id": product.id}]}
    a = await client.post("/app/orders", json=body, headers=keyed(alice, key))
    b = await client.post("/app/orders", json=body, headers=keyed(bob, key))
    assert (a.status_code, b.status_code) == (201, 201) and a.json()["id"] != b.json()["id"]
    # An older mini-program sends no key: each call is a new order, as in 0.2.
    plain = [await client.post("/app/orders", json=body, headers=customer_headers(alice)) for _ in range(2)]
    assert [p.status_code for p in plain] == [201, 201] and plain[0].json()["id"] != plain[1].json()["id"]
    bad = await client.post("/app/orders", json=body, headers=keyed(alice, "short"))
    assert bad.status_code == 400 and bad.json()["detail"]["field"] == "idempotency_key"


async def test_twenty_identical_purchases_at_once_make_one_order_and_take_each_source_once(client):
    customer, _, coupon, body = await customer_with_every_source()
    key = uuid.uuid4().hex
    answers = await asyncio.gather(*[client.post("/app/orders", json=body, headers=keyed(customer, key))
                                     for _ in range(20)])
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] * 19 + [201], [a.text for a in answers if a.status_code not in (200, 201)]
    assert len({a.json()["id"] for a in answers}) == 1
    order = await Order.get(customer_id=customer.id)
    assert (order.coupon_id, order.points_used, order.stored_value_fen, order.wechat_fen) == \
        (coupon.id, 2000, 3000, 4000)
    assert await Coupon.filter(id=coupon.id, order_id=order.id, status=CouponStatus.locked).count() == 1
    assert await stored_value.balance_of(customer.id) == (0, 0) and await points_of(customer.id) == 0
    await assert_ledgers_hold([customer.id])
