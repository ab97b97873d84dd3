"""The customer cancels their own unpaid order: closed now, the coupon, points and stored value back exactly once;
another customer's order is not found; a paid order is refused; racing the payment, exactly one of paid or
closed wins (against the WeChat Pay adapter pointed at the local fake, which closes trades as WeChat does)."""

from __future__ import annotations

import asyncio

from orders import stored_value
from orders.models import Order, OrderStatus
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


async def order_with_every_source(client):
    customer = await make_customer()
    product = await make_product("product", price_fen=10000)
    coupon = await give_coupon(customer.id, (await make_template("cash_off", value_fen=1000, threshold_fen=0)).id)
    await give_points(customer.id, 2000)
    await give_stored_value(customer.id, 2000, 1000)
    placed = await client.post("/app/orders", headers=customer_headers(customer), json={
        "items": [{"product_id": product.id}], "coupon_id": coupon.id, "use_points": True, "max_points": 2000,
        "use_stored_value": True})
    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert order["wechat_fen"] == 10000 - 1000 - 2000 - 3000
    assert await stored_value.balance_of(customer.id) == (0, 0) and await points_of(customer.id) == 0
    return customer, coupon, order


async def assert_everything_back(customer, coupon) -> None:
    assert (await Coupon.get(id=coupon.id)).status == CouponStatus.available
    assert await stored_value.balance_of(customer.id) == (2000, 1000)
    assert await points_of(customer.id) == 2000
    await assert_ledgers_hold([customer.id])


async def test_cancel_closes_the_unpaid_order_and_gives_every_source_back_once(client, redis):
    customer, coupon, order = await order_with_every_source(client)
    cancel = f"/app/orders/{order['id']}/cancel"
    first = await client.post(cancel, headers=customer_headers(customer))
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "closed" and first.json()["close_reason"] == "cancelled"
    await assert_everything_back(customer, coupon)
    # Twice, and then the job at the end of the payment window: the same answer, nothing back twice.
    again = await client.post(cancel, headers=customer_headers(customer))
    assert again.status_code == 200 and again.json() == first.json()
    await run_jobs(redis)
    await assert_everything_back(customer, coupon)
    # The closed order cannot be paid any more.
    pay = await client.post(f"/app/orders/{order['id']}/pay", headers=customer_headers(customer))
    assert pay.status_code == 409 and pay.json()["code"] == "order_not_payable"


async def test_concurrent_cancels_give_back_once(client):
    customer, coupon, order = await order_with_every_source(client)
    answers = await asyncio.gather(*[client.post(f"/app/orders/{order['id']}/cancel",
                                                 headers=customer_headers(customer)) for _ in range(10)])
    assert {a.status_code for a in answers} == {200}, [a.text for a in answers]
    await assert_everything_back(customer, coupon)


async def test_another_customers_order_is_not_found_and_a_paid_order_is_refused(client, redis):
    customer, coupon, order = await order_with_every_source(client)
    stranger = await make_customer()
    hidden = await client.post(f"/app/orders/{order['id']}/cancel", headers=customer_headers(stranger))
    assert hidden.status_code == 404 and hidden.json()["code"] == "order_not_found"
    assert (await Order.get(id=order["id"])).status == OrderStatus.pending_payment
    paid = await client.post(f"/sandbox/payments/{order['out_trade_no']}/succeed", headers=customer_headers(customer))
    assert paid.status_code == 200, paid.text
    refused = await client.post(f"/app/orders/{order['id']}/cancel", headers=customer_headers(customer))
    assert refused.status_code == 409 and refused.json()["code"] == "order_already_paid"
    await run_jobs(redis)
    assert (await Coupon.get(id=coupon.id)).status == CouponStatus.used
    assert await stored_value.balance_of(customer.id) == (0, 0) and await points_of(customer.id) == 0
    await assert_ledgers_hold([customer.id])


async def test_cancel_racing_the_payment_lets_exactly_one_win(client, wechatpay, redis):
    """The customer taps "cancel" while paying in the WeChat sheet. WeChat takes the payment only for a trade it
    has not closed (as the real one does); whichever happens first wins, and the sources follow the winner."""
    outcomes = []
    # (pay after, cancel after) in seconds: the payment well before, well after, and at about the same moment.
    delays = [(0.0, 0.3), (0.3, 0.0), (0.0, 0.0), (0.004, 0.0), (0.008, 0.0), (0.0, 0.004), (0.012, 0.0)]
    for pay_after, cancel_after in delays:
        customer, coupon, order = await order_with_every_source(client)
        prepaid = await client.post(f"/app/orders/{order['id']}/pay", headers=customer_headers(customer))
        assert prepaid.status_code == 200, prepaid.text
        no = order["out_trade_no"]

        async def pay(delay: float) -> int | None:
            await asyncio.sleep(delay)
            if wechatpay.trades[no].state == "CLOSED":
                return None  # WeChat refuses to pay a closed trade
            headers, body = wechatpay.notification("TRANSACTION.SUCCESS", wechatpay.customer_pays(no))
            return (await client.post("/payments/wechat/notify", headers=headers, content=body)).status_code

        async def cancel(delay: float):
            await asyncio.sleep(delay)
            return await client.post(f"/app/orders/{order['id']}/cancel", headers=customer_headers(customer))

        paid_status, cancelled = await asyncio.gather(pay(pay_after), cancel(cancel_after))
        await run_jobs(redis)
        final = await Order.get(id=order["id"])
        if cancelled.status_code == 200:
            assert paid_status is None and final.status == OrderStatus.closed and final.transaction_id is None
            await assert_everything_back(customer, coupon)
            outcomes.append("closed")
        else:
            assert cancelled.status_code == 409, cancelled.text
            assert cancelled.json()["code"] in ("order_already_paid", "order_being_paid")
            assert final.status in (OrderStatus.paid, OrderStatus.fulfilled) and paid_status == 204
            assert (await Coupon.get(id=coupon.id)).status == CouponStatus.used
            assert await stored_value.balance_of(customer.id) == (0, 0) and await points_of(customer.id) == 0
            await assert_ledgers_hold([customer.id])
            outcomes.append("paid")
    assert len(outcomes) == len(delays)
    print("cancel against payment:", outcomes)  # which won each time (-s shows it)


async def test_paid_after_the_cancel_sends_back_what_wechat_collected_and_nothing_twice(client, redis):
    """WeChat's money arriving after the cancel (a payment racing the close): the order takes it in and refunds
    exactly the WeChat part; the coupon, points and stored value were given back by the cancel already."""
    from orders.models import Refund

    customer, coupon, order = await order_with_every_source(client)
    assert (await client.post(f"/app/orders/{order['id']}/cancel", headers=customer_headers(customer))).status_code == 200
    paid = await client.post(f"/sandbox/payments/{order['out_trade_no']}/succeed", headers=customer_headers(customer))
    assert paid.status_code == 200, paid.text
    [refund] = await Refund.filter(order_id=order["id"])
    assert refund.amount_fen == order["wechat_fen"] == 4000 and refund.reason == "paid_after_close"
    await run_jobs(redis)
    await assert_everything_back(customer, coupon)
