"""A stored-value top-up refunded through WeChat Pay: the principal leaves the balance when the refund is asked,
and comes back, once, when WeChat Pay ends the refund without paying it (closed, abnormal, refused)."""

from __future__ import annotations

import uuid

import pytest

from orders import payments
from orders.models import Refund, RefundStatus
from orders.product_models import StoredValueEntry
from orders.stored_value import balance_of
from tests.factories import customer_headers, make_customer, make_staff, staff_headers
from tests.orders.factories import run_jobs
from tests.orders.shop_factories import assert_ledgers_hold, make_product

NOTIFY = "/payments/wechat/notify"
REFUND_NOTIFY = "/payments/wechat/refund-notify"


async def topped_up(client, wechatpay, redis):
    """A customer who bought a ¥50 plan with a ¥10 bonus, paid by WeChat Pay."""
    customer = await make_customer()
    plan = await make_product("topup", price_fen=5_000, topup_bonus_fen=1_000)
    bought = await client.post("/app/orders", json={"items": [{"product_id": plan.id}]},
                               headers=customer_headers(customer))
    assert bought.status_code == 201, bought.text
    order = bought.json()
    headers, body = wechatpay.notification("TRANSACTION.SUCCESS",
                                           wechatpay.transaction_resource(order["out_trade_no"], 5_000))
    assert (await client.post(NOTIFY, content=body, headers=headers)).status_code == 204
    await run_jobs(redis)
    assert await balance_of(customer.id) == (5_000, 1_000)
    return customer, order


async def ask_refund(client, order_id: int, amount_fen: int) -> Refund:
    finance = await make_staff("finance")
    response = await client.post(f"/admin/orders/{order_id}/refunds",
                                 json={"reason": "customer_request", "amount_fen": amount_fen},
                                 headers=staff_headers(finance) | {"Idempotency-Key": uuid.uuid4().hex})
    assert response.status_code == 201, response.text
    return await Refund.get(id=response.json()["id"])


def gateway_of(client):
    return client._transport.app.state.payment_gateway  # the live adapter the `wechatpay` fixture installed


async def failed_entries(customer_id: int) -> list[StoredValueEntry]:
    return await StoredValueEntry.filter(customer_id=customer_id, kind="refund_failed")


@pytest.mark.parametrize("how", ["closed_by_notification", "abnormal_by_query"])
async def test_a_topup_refund_ended_unpaid_puts_the_principal_and_bonus_back_once(client, wechatpay, redis, how):
    customer, order = await topped_up(client, wechatpay, redis)
    wechatpay.refund_processing_queries = 99  # WeChat Pay keeps it PROCESSING until it says otherwise
    refund = await ask_refund(client, order["id"], 3_000)
    assert await balance_of(customer.id) == (2_000, 0)  # the principal out, the plan's bonus forfeited
    assert await payments.push_refund(gateway_of(client), refund.id) == RefundStatus.processing
    if how == "closed_by_notification":
        headers, body = wechatpay.notification(
            "REFUND.CLOSED", wechatpay.refund_resource(refund.out_refund_no, status="CLOSED"), original_type="refund")
        for _ in range(2):  # WeChat Pay delivers a notification again when it likes: the second changes nothing
            assert (await client.post(REFUND_NOTIFY, content=body, headers=headers)).status_code == 204
        final = RefundStatus.closed
    else:
        wechatpay.refunds[refund.out_refund_no].status = "ABNORMAL"
        assert await payments.push_refund(gateway_of(client), refund.id) == RefundStatus.abnormal
        assert await payments.push_refund(gateway_of(client), refund.id) == RefundStatus.abnormal
        final = RefundStatus.abnormal
    assert (await Refund.get(id=refund.id)).status == final
    assert await balance_of(customer.id) == (5_000, 1_000)
    [entry] = await failed_entries(customer.id)
    assert (entry.principal_delta, entry.bonus_delta, entry.order_id) == (3_000, 1_000, order["id"])
    assert entry.ref == f"topup_refund_failed:{refund.out_refund_no}"
    # The principal is refundable again (the failed refund no longer holds its amount on the order), and the bonus
    # is forfeited again by the refund that goes through.
    again = await ask_refund(client, order["id"], 2_000)
    assert await balance_of(customer.id) == (3_000, 0)
    wechatpay.refund_processing_queries = 0
    assert await payments.push_refund(gateway_of(client), again.id) == RefundStatus.processing  # submitted
    assert await payments.push_refund(gateway_of(client), again.id) == RefundStatus.succeeded  # then queried
    assert await balance_of(customer.id) == (3_000, 0)
    await assert_ledgers_hold([customer.id])


async def test_a_topup_refund_the_gateway_refuses_for_good_puts_the_principal_back(client, wechatpay, redis):
    customer, order = await topped_up(client, wechatpay, redis)
    refund = await ask_refund(client, order["id"], 5_000)
    assert await balance_of(customer.id) == (0, 0)
    wechatpay.refund_refusal = "INVALID_REQUEST"
    assert await payments.push_refund(gateway_of(client), refund.id) == RefundStatus.failed
    assert await payments.push_refund(gateway_of(client), refund.id) == RefundStatus.failed
    assert await balance_of(customer.id) == (5_000, 1_000)
    assert len(await failed_entries(customer.id)) == 1
    await assert_ledgers_hold([customer.id])


async def test_the_bonus_comes_back_only_when_no_other_refund_of_the_topup_still_stands(client, wechatpay, redis):
    customer, order = await topped_up(client, wechatpay, redis)
    wechatpay.refund_processing_queries = 99
    first = await ask_refund(client, order["id"], 1_000)  # forfeits the plan's bonus
    second = await ask_refund(client, order["id"], 1_500)
    assert await balance_of(customer.id) == (2_500, 0)
    for refund in (first, second):
        assert await payments.push_refund(gateway_of(client), refund.id) == RefundStatus.processing
    wechatpay.refunds[first.out_refund_no].status = "CLOSED"
    assert await payments.push_refund(gateway_of(client), first.id) == RefundStatus.closed
    # The second refund still stands: it keeps the bonus forfeited; only the first one's principal comes back.
    assert await balance_of(customer.id) == (3_500, 0)
    wechatpay.refunds[second.out_refund_no].status = "CLOSED"
    assert await payments.push_refund(gateway_of(client), second.id) == RefundStatus.closed
    assert await balance_of(customer.id) == (5_000, 1_000)
    assert len(await failed_entries(customer.id)) == 2
    await assert_ledgers_hold([customer.id])
