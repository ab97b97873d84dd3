"""Finance: the order list and the CSV export carry totals that add up to the fen, and staff refunds are audited."""

from __future__ import annotations

import asyncio
import csv
import io

from orders import service
from orders.models import Order, Refund
from kernel import clock
from kernel.db import transaction
from kernel.identity.models import AuditLogEntry
from tests.orders.factories import make_order, run_jobs
from tests.factories import customer_headers, make_customer, make_staff, staff_headers


async def pay_in_sandbox(client, customer, order) -> None:
    response = await client.post(f"/sandbox/payments/{order.out_trade_no}/succeed", headers=customer_headers(customer))
    assert response.status_code == 200, response.text


async def test_order_list_and_csv_totals_add_up(client, redis):
    finance = await make_staff("finance")
    customer = await make_customer()
    orders = [await make_order(customer, unit_price_fen=price) for price in (1_001, 2_002, 3_303, 40_000)]
    for order in orders[:3]:
        await pay_in_sandbox(client, customer, order)
    await run_jobs(redis)
    async with transaction() as conn:
        await service.staff_refund(conn, orders[0].id, reason="service_issue", amount_fen=None)
        paid = await service.get_order(conn, orders[1].id)
        await service.request_refund(conn, paid, amount_fen=7, reason="tier_price")
    await run_jobs(redis)

    today = clock.local_today().isoformat()
    listed = await client.get("/admin/orders", params={"from": today, "to": today, "limit": 200},
                              headers=staff_headers(finance))
    assert listed.status_code == 200, listed.text
    page = listed.json()
    mine = [o for o in page["items"] if o["customer_id"] == customer.id]
    assert {o["id"] for o in mine} == {o.id for o in orders}
    totals = page["totals"]
    rows = page["items"]
    assert totals["orders"] == page["total"] == len(rows)
    for key in ("total_fen", "paid_fen", "refunded_fen", "net_fen"):
        assert totals[key] == sum(o[key] for o in rows)
    assert totals["net_fen"] == totals["paid_fen"] - totals["refunded_fen"]
    mine_by_id = {o["id"]: o for o in mine}
    assert mine_by_id[orders[0].id]["refunded_fen"] == 1_001 and mine_by_id[orders[0].id]["status"] == "refunded"
    assert mine_by_id[orders[1].id]["net_fen"] == 2_002 - 7
    assert mine_by_id[orders[3].id]["paid_fen"] == 0

    export = await client.get("/admin/orders/export.csv", params={"from": today, "to": today},
                              headers=staff_headers(finance))
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(export.content.decode("utf-8-sig"))))
    body, total_row = table[:-1], table[-1]
    assert total_row["order_id"] == "TOTAL" and int(total_row["out_trade_no"]) == len(body) == totals["orders"]
    for key in ("total_fen", "paid_fen", "refunded_fen", "net_fen"):
        assert int(total_row[key]) == sum(int(r[key]) for r in body) == totals[key]
    assert await AuditLogEntry.filter(staff_id=finance.id, action="orders.export").exists()

    only_refunded = await client.get("/admin/orders", params={"status": "refunded"}, headers=staff_headers(finance))
    assert all(o["status"] == "refunded" for o in only_refunded.json()["items"])
    bad = await client.get("/admin/orders", params={"from": today, "to": "2000-01-01"}, headers=staff_headers(finance))
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "from"


async def test_staff_refund_route_is_audited_and_bounded(client, redis):
    finance = await make_staff("finance")
    customer = await make_customer()
    order = await make_order(customer, unit_price_fen=5_000)
    unpaid = await client.post(f"/admin/orders/{order.id}/refunds", json={"reason": "goodwill"},
                               headers=staff_headers(finance))
    assert unpaid.status_code == 409 and unpaid.json()["code"] == "refund_not_allowed"
    await pay_in_sandbox(client, customer, order)
    await run_jobs(redis)
    too_much = await client.post(f"/admin/orders/{order.id}/refunds", json={"reason": "goodwill", "amount_fen": 5_001},
                                 headers=staff_headers(finance))
    assert too_much.status_code == 422 and too_much.json()["detail"]["field"] == "amount_fen"
    part = await client.post(f"/admin/orders/{order.id}/refunds", json={"reason": "goodwill", "amount_fen": 1_200},
                             headers=staff_headers(finance))
    assert part.status_code == 201 and part.json()["amount_fen"] == 1_200
    await run_jobs(redis)
    detail = await client.get(f"/admin/orders/{order.id}", headers=staff_headers(finance))
    assert detail.json()["refunds"][0]["status"] == "succeeded" and detail.json()["order"]["refunded_fen"] == 1_200
    assert [e["outcome"] for e in detail.json()["events"]] == ["applied"]
    assert (await Order.get(id=order.id)).status.value == "fulfilled"
    assert await AuditLogEntry.filter(staff_id=finance.id, action="orders.refund", target_id=str(order.id)).exists()


async def test_dates_at_the_ends_of_the_calendar_are_refused_or_served_never_a_500(client):
    finance = staff_headers(await make_staff("finance"))
    for params, field in (({"from": "0001-01-01"}, "from"), ({"to": "9999-12-31"}, "to")):
        for route in ("/admin/orders", "/admin/orders/export.csv"):
            refused = await client.get(route, params=params, headers=finance)
            assert refused.status_code == 422 and refused.json()["detail"]["field"] == field, (route, refused.text)
    wide = await client.get("/admin/orders", params={"from": "0001-01-02", "to": "9999-12-30"}, headers=finance)
    assert wide.status_code == 200, wide.text
    malformed = await client.get("/admin/orders", params={"from": "2024-13-01"}, headers=finance)
    assert malformed.status_code == 400 and malformed.json()["code"] == "validation_error"


async def test_concurrent_staff_refunds_never_reserve_more_than_was_paid(client, redis):
    # Fifteen refunds of 2,000 of a 5,000 order, five for each reason: two reasons fit, the same reason asked
    # again finds its first refund, and nothing is reserved twice.
    finance = await make_staff("finance")
    customer = await make_customer()
    order = await make_order(customer, unit_price_fen=5_000)
    await pay_in_sandbox(client, customer, order)
    await run_jobs(redis)
    reasons = ["customer_request", "service_issue", "goodwill"] * 5
    responses = await asyncio.gather(*[
        client.post(f"/admin/orders/{order.id}/refunds", json={"reason": reason, "amount_fen": 2_000},
                    headers=staff_headers(finance))
        for reason in reasons
    ])
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {201, 422}, [r.text for r in responses if r.status_code not in (201, 422)]
    refunds = await Refund.filter(order_id=order.id)
    assert len(refunds) == 2 and {r.amount_fen for r in refunds} == {2_000}
    granted = {r.json()["id"] for r in responses if r.status_code == 201}
    assert granted == {r.id for r in refunds}
    refused_reasons = {reason for reason, r in zip(reasons, responses) if r.status_code == 422}
    assert len(refused_reasons) == 1 and all(r.json()["code"] == "refund_too_large" for r in responses
                                             if r.status_code == 422)
    assert (await Order.get(id=order.id)).refund_reserved_fen == 4_000
    await run_jobs(redis)
    assert (await Order.get(id=order.id)).refunded_fen == 4_000
