"""WeChat Pay: notifications verified over the raw body, applied once; forged, stale and altered ones refused;
unpaid orders closed once; refunds pushed until confirmed, against a local fake WeChat Pay server."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from orders import payments, service
from orders.errors import RefundTooLarge
from orders.hooks import UnknownLineKind
from orders.models import NotificationOutcome, Order, OrderLine, OrderStatus, PaymentEvent, Refund, RefundStatus
from kernel import clock
from kernel.db import transaction
from kernel.outbox.models import OutboxMessage
from tests.orders.factories import SEEN, enqueue_now, make_order, run_jobs
from tests.factories import customer_headers, make_customer

NOTIFY = "/payments/wechat/notify"
REFUND_NOTIFY = "/payments/wechat/refund-notify"


async def paid_jobs(order_id: int) -> int:
    return await OutboxMessage.filter(job_name="orders.order_paid", args=[order_id]).count()


async def test_adapter_verifies_and_decrypts_a_documented_notification(live_gateway, fake_pay):
    order = await make_order(unit_price_fen=12_800)
    headers, body = fake_pay.notification(
        "TRANSACTION.SUCCESS", fake_pay.transaction_resource(order.out_trade_no, 12_800, transaction_id="4200T1")
    )
    # Lower-case header names, as ASGI servers deliver them.
    notification = live_gateway.parse_notification({k.lower(): v for k, v in headers.items()}, body)
    assert notification.event_type == "TRANSACTION.SUCCESS"
    assert notification.resource["out_trade_no"] == order.out_trade_no
    assert notification.resource["amount"]["total"] == 12_800
    assert notification.resource["transaction_id"] == "4200T1"


async def test_twenty_identical_notifications_pay_once_and_fulfil_once(client, wechatpay, redis):
    order = await make_order(unit_price_fen=36_800)
    headers, body = wechatpay.notification(
        "TRANSACTION.SUCCESS", wechatpay.transaction_resource(order.out_trade_no, 36_800, transaction_id="4200DUP")
    )
    responses = await asyncio.gather(*[client.post(NOTIFY, content=body, headers=headers) for _ in range(20)])
    assert [r.status_code for r in responses] == [204] * 20

    paid = await Order.get(id=order.id)
    assert paid.status == OrderStatus.paid and paid.transaction_id == "4200DUP" and paid.paid_fen == 36_800
    outcomes = await PaymentEvent.filter(out_trade_no=order.out_trade_no).values_list("outcome", flat=True)
    assert sorted(outcomes).count(NotificationOutcome.applied) == 1 and len(outcomes) == 20
    assert await paid_jobs(order.id) == 1

    # A late 21st delivery after fulfilment changes nothing either.
    await run_jobs(redis)
    assert (await client.post(NOTIFY, content=body, headers=headers)).status_code == 204
    await run_jobs(redis)
    assert SEEN["paid"][order.id] == 1
    assert (await Order.get(id=order.id)).status == OrderStatus.fulfilled
    assert await paid_jobs(order.id) == 1


async def test_forged_altered_stale_and_mismatched_notifications_are_refused(client, wechatpay):
    order = await make_order(unit_price_fen=5_000)
    resource = wechatpay.transaction_resource(order.out_trade_no, 5_000)

    forger = rsa.generate_private_key(65537, 2048)
    headers, body = wechatpay.notification("TRANSACTION.SUCCESS", resource, signing_key=forger)
    forged = await client.post(NOTIFY, content=body, headers=headers)
    assert forged.status_code == 401 and forged.json() == {"code": "FAIL", "message": "bad_signature"}

    headers, body = wechatpay.notification("TRANSACTION.SUCCESS", resource)
    tampered = body.replace(b'"summary"', b'"summary" ', 1)  # one byte more than what was signed
    assert (await client.post(NOTIFY, content=tampered, headers=headers)).json()["message"] == "bad_signature"

    stale_ts = int(time.time()) - 600
    headers, body = wechatpay.notification("TRANSACTION.SUCCESS", resource, timestamp=stale_ts)
    stale = await client.post(NOTIFY, content=body, headers=headers)
    assert stale.status_code == 401 and stale.json()["message"] == "stale_timestamp"

    headers, body = wechatpay.notification("TRANSACTION.SUCCESS", resource, apiv3_key="k" * 32)
    assert (await client.post(NOTIFY, content=body, headers=headers)).json()["message"] == "undecryptable"

    headers, body = wechatpay.notification("TRANSACTION.SUCCESS", resource, serial="PUB_KEY_ID_SOMEONE_ELSE")
    assert (await client.post(NOTIFY, content=body, headers=headers)).json()["message"] == "unknown_serial"

    missing = await client.post(NOTIFY, content=body, headers={"Content-Type": "application/json"})
    assert missing.status_code == 401 and missing.json()["message"] == "missing_headers"

    # Authentic, but for another amount or another merchant: recorded, refused, never applied.
    changed = wechatpay.transaction_resource(order.out_trade_no, 1)
    headers, body = wechatpay.notification("TRANSACTION.SUCCESS", changed)
    wrong_amount = await client.post(NOTIFY, content=body, headers=headers)
    assert wrong_amount.status_code == 400 and wrong_amount.json()["message"] == "amount_mismatch"
    other = wechatpay.transaction_resource(order.out_trade_no, 5_000, mchid="1900000001")
    headers, body = wechatpay.notification("TRANSACTION.SUCCESS", other)
    assert (await client.post(NOTIFY, content=body, headers=headers)).json()["message"] == "merchant_mismatch"

    # Unknown order: recorded and refused, so WeChat delivers it again (the order may not be committed yet;
    # tests/failures/test_notification_before_commit.py). WeChat gives up after about a day.
    headers, body = wechatpay.notification("TRANSACTION.SUCCESS", wechatpay.transaction_resource("CO-nowhere", 5))
    unknown = await client.post(NOTIFY, content=body, headers=headers)
    assert unknown.status_code == 404 and unknown.json() == {"code": "FAIL", "message": "unknown_order"}
    assert await PaymentEvent.filter(out_trade_no="CO-nowhere", outcome=NotificationOutcome.unknown_order).exists()

    garbage = await client.post(NOTIFY, content=b"\xff\x00not json", headers=headers)
    assert garbage.status_code == 401

    current = await Order.get(id=order.id)
    assert current.status == OrderStatus.pending_payment and current.transaction_id is None
    assert await paid_jobs(order.id) == 0
    outcomes = set(await PaymentEvent.filter(out_trade_no=order.out_trade_no).values_list("outcome", flat=True))
    assert outcomes == {NotificationOutcome.amount_mismatch, NotificationOutcome.merchant_mismatch}


async def test_pay_route_prepays_at_wechat_and_signs_request_payment(client, wechatpay):
    customer = await make_customer()
    order = await make_order(customer, unit_price_fen=19_900)
    first = await client.post(f"/app/orders/{order.id}/pay", headers=customer_headers(customer))
    assert first.status_code == 200, first.text
    params = first.json()
    trade = wechatpay.trades[order.out_trade_no]
    assert params["package"] == f"prepay_id={trade.prepay_id}" and params["signType"] == "RSA"
    assert params["appId"] == wechatpay.appid and trade.total == 19_900 and trade.openid == customer.openid

    # paySign is RSA-SHA256 over appId, timeStamp, nonceStr, package with the merchant key.
    import base64

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    message = f"{params['appId']}\n{params['timeStamp']}\n{params['nonceStr']}\n{params['package']}\n".encode()
    wechatpay.merchant_key.public_key().verify(base64.b64decode(params["paySign"]), message, padding.PKCS1v15(),
                                               hashes.SHA256())

    prepays_before = wechatpay.calls.count(("POST", "/v3/pay/transactions/jsapi"))
    again = await client.post(f"/app/orders/{order.id}/pay", headers=customer_headers(customer))
    assert again.json()["package"] == params["package"] and again.json()["paySign"] != params["paySign"]
    # The second tap re-signs the stored prepay_id: no second prepay at WeChat.
    assert wechatpay.calls.count(("POST", "/v3/pay/transactions/jsapi")) == prepays_before

    stranger = await make_customer()
    assert (await client.post(f"/app/orders/{order.id}/pay", headers=customer_headers(stranger))).status_code == 404
    assert (await client.get(f"/app/orders/{order.id}", headers=customer_headers(stranger))).status_code == 404


async def test_unpaid_order_closes_and_releases_its_hold_exactly_once(client, wechatpay, redis):
    customer = await make_customer()
    headers = customer_headers(customer)
    order = await make_order(customer)
    assert (await client.post(f"/app/orders/{order.id}/pay", headers=headers)).status_code == 200

    clock.set_now(clock.now() + timedelta(minutes=20))  # the window has ended; the customer never paid
    await asyncio.gather(*[enqueue_now(redis, "orders.close_unpaid", order.id, job_id=f"close-{order.id}-{i}")
                           for i in range(3)])
    await enqueue_now(redis, "orders.reconcile", job_id=f"reconcile-{order.id}")
    # The deadline job itself is also due now (its window ended in the injected time).
    await OutboxMessage.filter(job_name="orders.close_unpaid", args=[order.id]).update(run_at=None)
    await run_jobs(redis, ctx={"payment_gateway": wechatpay_gateway(client)})

    closed = await Order.get(id=order.id)
    assert closed.status == OrderStatus.closed and closed.close_reason == "expired"
    assert SEEN["released"][order.id] == 1
    assert wechatpay.trades[order.out_trade_no].state == "CLOSED"  # closed at WeChat first: no late payment

    again = await client.post(f"/app/orders/{order.id}/pay", headers=headers)
    assert again.status_code == 409 and again.json()["code"] == "order_not_payable"


def wechatpay_gateway(client):
    return client._transport.app.state.payment_gateway  # the live adapter the `wechatpay` fixture installed


async def test_reconciliation_applies_a_payment_whose_notification_never_came(client, wechatpay, redis):
    customer = await make_customer()
    order = await make_order(customer)
    assert (await client.post(f"/app/orders/{order.id}/pay", headers=customer_headers(customer))).status_code == 200
    wechatpay.customer_pays(order.out_trade_no)  # ...and the notification is lost

    clock.set_now(clock.now() + timedelta(minutes=20))
    await enqueue_now(redis, "orders.reconcile", job_id=f"reconcile-lost-{order.id}")
    await run_jobs(redis, ctx={"payment_gateway": wechatpay_gateway(client)})
    current = await Order.get(id=order.id)
    assert current.status == OrderStatus.fulfilled and SEEN["released"][order.id] == 0
    assert await PaymentEvent.filter(out_trade_no=order.out_trade_no, source="query",
                                     outcome=NotificationOutcome.applied).exists()


async def test_payment_after_close_is_refunded_automatically(client, wechatpay, redis):
    order = await make_order(unit_price_fen=8_800)
    clock.set_now(clock.now() + timedelta(minutes=20))
    async with transaction() as conn:
        assert await service.close_unpaid(conn, order.id, "expired")
    clock.set_now(None)
    headers, body = wechatpay.notification("TRANSACTION.SUCCESS",
                                           wechatpay.transaction_resource(order.out_trade_no, 8_800))
    assert (await client.post(NOTIFY, content=body, headers=headers)).status_code == 204
    refund = await Refund.get(order_id=order.id)
    assert refund.reason == "paid_after_close" and refund.amount_fen == 8_800
    assert (await Order.get(id=order.id)).status == OrderStatus.refunding


async def test_refund_is_retried_until_the_gateway_confirms_it(client, wechatpay, redis):
    order = await make_order(unit_price_fen=26_000)
    headers, body = wechatpay.notification("TRANSACTION.SUCCESS",
                                           wechatpay.transaction_resource(order.out_trade_no, 26_000))
    assert (await client.post(NOTIFY, content=body, headers=headers)).status_code == 204
    await run_jobs(redis)

    wechatpay.refund_failures = 2  # two 500 SYSTEM_ERROR answers, then PROCESSING, then SUCCESS on query
    wechatpay.refund_processing_queries = 1
    async with transaction() as conn:
        current = await service.get_order(conn, order.id)
        refund = await service.request_refund(conn, current, amount_fen=26_000, reason="group_failed")
        same = await service.request_refund(conn, current, amount_fen=26_000, reason="group_failed")
    assert same.id == refund.id

    worker = await run_jobs(redis, ctx={"payment_gateway": wechatpay_gateway(client)})
    assert worker.jobs_retried >= 3

    done = await Refund.get(id=refund.id)
    assert done.status == RefundStatus.succeeded and done.attempts >= 4 and done.refund_id
    submissions = [c for c in wechatpay.calls if c == ("POST", "/v3/refund/domestic/refunds")]
    assert len(submissions) >= 3 and len([r for r in wechatpay.refunds if r == refund.out_refund_no]) == 1
    assert refund.out_refund_no == f"{order.out_trade_no}-group_failed"
    refunded = await Order.get(id=order.id)
    assert refunded.status == OrderStatus.refunded and refunded.refunded_fen == 26_000
    assert SEEN["refunded"][order.id] == 1

    # WeChat's refund notification for the same refund arrives later: a duplicate, changes nothing.
    headers, body = wechatpay.notification("REFUND.SUCCESS", wechatpay.refund_resource(refund.out_refund_no),
                                           original_type="refund")
    assert (await client.post(REFUND_NOTIFY, content=body, headers=headers)).status_code == 204
    assert (await Order.get(id=order.id)).refunded_fen == 26_000 and SEEN["refunded"][order.id] == 1


async def test_partial_refunds_and_the_refund_notification(client, wechatpay, redis):
    order = await make_order(unit_price_fen=10_000, quantity=2)
    headers, body = wechatpay.notification("TRANSACTION.SUCCESS",
                                           wechatpay.transaction_resource(order.out_trade_no, 20_000))
    assert (await client.post(NOTIFY, content=body, headers=headers)).status_code == 204
    await run_jobs(redis)
    wechatpay.refund_processing_queries = 99  # stays PROCESSING: the notification must confirm it

    async with transaction() as conn:
        current = await service.get_order(conn, order.id)
        tier = await service.request_refund(conn, current, amount_fen=3_000, reason="tier_price")
    gateway = wechatpay_gateway(client)
    assert await payments.push_refund(gateway, tier.id) == RefundStatus.processing
    assert (await Order.get(id=order.id)).status == OrderStatus.fulfilled  # a partial refund keeps the status

    resource = wechatpay.refund_resource(tier.out_refund_no)
    headers, body = wechatpay.notification("REFUND.SUCCESS", {**resource, "amount": {**resource["amount"],
                                                                                     "refund": 2_999}},
                                           original_type="refund")
    wrong = await client.post(REFUND_NOTIFY, content=body, headers=headers)
    assert wrong.status_code == 400 and wrong.json()["message"] == "amount_mismatch"
    headers, body = wechatpay.notification("REFUND.SUCCESS", resource, original_type="refund")
    assert (await client.post(REFUND_NOTIFY, content=body, headers=headers)).status_code == 204
    assert (await Refund.get(id=tier.id)).status == RefundStatus.succeeded
    current = await Order.get(id=order.id)
    assert current.refunded_fen == 3_000 and current.status == OrderStatus.fulfilled

    # The rest can be refunded, never more than what was paid.
    async with transaction() as conn:
        current = await service.get_order(conn, order.id)
        try:
            await service.request_refund(conn, current, amount_fen=17_001, reason="customer_request")
            raise AssertionError("over-refund accepted")
        except RefundTooLarge:
            pass
    async with transaction() as conn:
        rest, _ = await service.staff_refund(conn, order.id, reason="customer_request", amount_fen=None,
                                             idempotency_key="rest-of-order")
    assert rest.amount_fen == 17_000
    assert (await Order.get(id=order.id)).status == OrderStatus.refunding


async def test_end_to_end_sandbox_flow_from_order_to_paid(client, redis):
    customer = await make_customer()
    order = await make_order(customer, unit_price_fen=68_800)
    headers = customer_headers(customer)
    listed = await client.get("/app/orders", headers=headers)
    assert listed.status_code == 200 and listed.json()["items"][0]["id"] == order.id

    pay = await client.post(f"/app/orders/{order.id}/pay", headers=headers)
    assert pay.status_code == 200 and pay.json()["package"] == f"prepay_id=sbx_{order.out_trade_no}"

    stranger = await make_customer()
    hijack = await client.post(f"/sandbox/payments/{order.out_trade_no}/succeed", headers=customer_headers(stranger))
    assert hijack.status_code == 404

    paid = await client.post(f"/sandbox/payments/{order.out_trade_no}/succeed", headers=headers)
    assert paid.status_code == 200, paid.text
    assert paid.json() == {"outcome": "applied", "order_id": order.id, "status": "paid"}
    again = await client.post(f"/sandbox/payments/{order.out_trade_no}/succeed", headers=headers)
    assert again.json()["outcome"] == "applied" or again.json()["status"] == "paid"

    await run_jobs(redis)
    shown = await client.get(f"/app/orders/{order.id}", headers=headers)
    assert shown.json()["status"] == "fulfilled" and shown.json()["paid_fen"] == 68_800
    assert SEEN["paid"][order.id] == 1
    events = await PaymentEvent.filter(out_trade_no=order.out_trade_no, source="sandbox").values_list(
        "outcome", flat=True)
    assert NotificationOutcome.applied in events


def test_sandbox_route_is_mounted_only_with_the_sandbox_gateway():
    import msgspec

    from api.orders import ROUTES_WHEN, SandboxPaymentController
    from kernel.settings import get_settings

    settings = get_settings()
    assert ROUTES_WHEN(settings) == [SandboxPaymentController]
    live = msgspec.structs.replace(settings, pay=msgspec.structs.replace(settings.pay, mode="wechatpay"))
    assert ROUTES_WHEN(live) == []


async def test_my_orders_page_carries_each_orders_lines_and_filters_by_status(client, redis):
    customer = await make_customer()
    headers = customer_headers(customer)
    orders = [await make_order(customer, unit_price_fen=100 * (i + 1), quantity=i + 1) for i in range(3)]
    await make_order()  # another customer's order never shows
    paid = await client.post(f"/sandbox/payments/{orders[1].out_trade_no}/succeed", headers=headers)
    assert paid.status_code == 200
    page = (await client.get("/app/orders", params={"limit": 2}, headers=headers)).json()
    assert page["total"] == 3 and [o["id"] for o in page["items"]] == [orders[2].id, orders[1].id]
    assert [(o["lines"][0]["quantity"], o["lines"][0]["amount_fen"]) for o in page["items"]] == [(3, 900), (2, 400)]
    rest = (await client.get("/app/orders", params={"limit": 2, "offset": 2}, headers=headers)).json()
    assert [o["id"] for o in rest["items"]] == [orders[0].id] and len(rest["items"][0]["lines"]) == 1
    only_paid = (await client.get("/app/orders", params={"status": "paid"}, headers=headers)).json()
    assert only_paid["total"] == 1 and only_paid["items"][0]["id"] == orders[1].id
    longer = await client.post(f"/sandbox/payments/{'X' * 200}/succeed", headers=headers)
    assert longer.status_code == 404 and longer.json()["code"] == "order_not_found"


async def test_an_order_line_of_a_kind_no_room_registered_is_refused():
    """Before: a kind nobody registered held nothing and counted as fulfilled on payment (fails open)."""
    customer = await make_customer()
    before = await Order.filter(customer_id=customer.id).count()
    with pytest.raises(UnknownLineKind):
        await make_order(customer, kind="nobody_sells_this")
    assert await Order.filter(customer_id=customer.id).count() == before

    # A line that reached the table anyway (a room removed, a bad migration) is never delivered on payment.
    order = await make_order(customer)
    await OrderLine.filter(order_id=order.id).update(kind="nobody_sells_this")
    await Order.filter(id=order.id).update(status=OrderStatus.paid, paid_fen=order.total_fen, paid_at=clock.now())
    with pytest.raises(UnknownLineKind):
        async with transaction() as conn:
            await service.handle_paid_order(conn, order.id)
    assert (await Order.get(id=order.id)).status == OrderStatus.paid
