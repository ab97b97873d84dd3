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
        await service.staff_refund(conn, orders[0].id, reason="service_issue", amount_fen=None,
                                   idempotency_key="finance-totals-1")
        paid = await service.get_order(conn, orders[1].id)
        await service.request_refund(conn, paid, amount_fen=7, reason="tier_price")
    await run_jobs(redis)

    today = clock.local_today().isoformat()
    # The totals are the whole filter's, every page of it: the suite's other tests order today too (over 200 of
    # them by now), so the rows are read page by page.
    rows: list[dict] = []
    while True:
        listed = await client.get("/admin/orders", params={"from": today, "to": today, "limit": 200,
                                                           "offset": len(rows)}, headers=staff_headers(finance))
        assert listed.status_code == 200, listed.text
        page = listed.json()
        rows += page["items"]
        if not page["items"] or len(rows) >= page["total"]:
            break
    mine = [o for o in rows if o["customer_id"] == customer.id]
    assert {o["id"] for o in mine} == {o.id for o in orders}
    totals = page["totals"]
    assert totals["orders"] == page["total"] == len(rows) == len({o["id"] for o in rows})
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


def refund_post(client, finance, order_id: int, key: str, **body):
    return client.post(f"/admin/orders/{order_id}/refunds", json={"reason": "goodwill"} | body,
                       headers=staff_headers(finance) | {"Idempotency-Key": key})


async def test_staff_refund_route_is_audited_and_bounded(client, redis):
    finance = await make_staff("finance")
    customer = await make_customer()
    order = await make_order(customer, unit_price_fen=5_000)
    unpaid = await refund_post(client, finance, order.id, "bounded-0")
    assert unpaid.status_code == 409 and unpaid.json()["code"] == "refund_not_allowed"
    keyless = await client.post(f"/admin/orders/{order.id}/refunds", json={"reason": "goodwill"},
                                headers=staff_headers(finance))
    assert keyless.status_code == 400 and "Idempotency-Key" in keyless.text, keyless.text
    await pay_in_sandbox(client, customer, order)
    await run_jobs(redis)
    too_much = await refund_post(client, finance, order.id, "bounded-1", amount_fen=5_001)
    assert too_much.status_code == 422 and too_much.json()["detail"]["field"] == "amount_fen"
    part = await refund_post(client, finance, order.id, "bounded-2", amount_fen=1_200)
    assert part.status_code == 201 and part.json()["amount_fen"] == 1_200
    await run_jobs(redis)
    detail = await client.get(f"/admin/orders/{order.id}", headers=staff_headers(finance))
    assert detail.json()["refunds"][0]["status"] == "succeeded" and detail.json()["order"]["refunded_fen"] == 1_200
    assert [e["outcome"] for e in detail.json()["events"]] == ["applied"]
    assert (await Order.get(id=order.id)).status.value == "fulfilled"
    assert await AuditLogEntry.filter(staff_id=finance.id, action="orders.refund", target_id=str(order.id)).exists()


async def test_second_partial_refund_with_the_same_reason_is_a_new_refund_and_a_retry_is_the_same(client, redis):
    # The attack: two partial refunds with the same reason used to answer the first one (100) for the second
    # (5,000) and audit a refund that never happened; repeating a full or completed refund was a 409.
    finance = await make_staff("finance")
    customer = await make_customer()
    order = await make_order(customer, unit_price_fen=10_000)
    await pay_in_sandbox(client, customer, order)
    await run_jobs(redis)

    first = await refund_post(client, finance, order.id, "partial-one", reason="customer_request", amount_fen=100)
    second = await refund_post(client, finance, order.id, "partial-two", reason="customer_request", amount_fen=5_000)
    assert (first.status_code, second.status_code) == (201, 201), second.text
    assert second.json()["amount_fen"] == 5_000 and second.json()["id"] != first.json()["id"]
    # A retry of the first while it is pending: the same refund, 200, nothing new.
    retry = await refund_post(client, finance, order.id, "partial-one", reason="customer_request", amount_fen=100)
    assert retry.status_code == 200 and retry.json()["id"] == first.json()["id"]
    assert retry.json()["status"] == "pending"
    # The key reused for another amount, order or reason: refused with a stable code, nothing changes.
    other = await make_order(customer, unit_price_fen=3_000)
    await pay_in_sandbox(client, customer, other)
    await run_jobs(redis)
    for body, order_id in (({"reason": "customer_request", "amount_fen": 200}, order.id),
                           ({"reason": "goodwill", "amount_fen": 100}, order.id),
                           ({"reason": "customer_request"}, order.id),
                           ({"reason": "customer_request", "amount_fen": 100}, other.id)):
        reused = await refund_post(client, finance, order_id, "partial-one", **body)
        assert reused.status_code == 409, reused.text
        assert reused.json()["code"] == "idempotency_key_reused"
        assert reused.json()["detail"]["field"] == "Idempotency-Key"
    # Above what is left (10,000 - 5,100): 422 with the amount left.
    above = await refund_post(client, finance, order.id, "partial-three", amount_fen=4_901)
    assert above.status_code == 422 and above.json()["code"] == "refund_too_large"
    assert above.json()["detail"]["left_fen"] == 4_900
    await run_jobs(redis)

    # Completed: the same key still answers the same refund.
    done = await refund_post(client, finance, order.id, "partial-two", reason="customer_request", amount_fen=5_000)
    assert done.status_code == 200 and done.json()["id"] == second.json()["id"]
    assert done.json()["status"] == "succeeded"
    # The rest (no amount), then its retry after the order is fully refunded.
    rest = await refund_post(client, finance, order.id, "the-rest-1")
    assert rest.status_code == 201 and rest.json()["amount_fen"] == 4_900
    await run_jobs(redis)
    assert (await Order.get(id=order.id)).status.value == "refunded"
    again = await refund_post(client, finance, order.id, "the-rest-1")
    assert again.status_code == 200 and again.json()["id"] == rest.json()["id"]
    # Failed (the gateway refused it for good, as `push_refund` records it): the same key answers it as it is.
    doomed = await refund_post(client, finance, other.id, "other-fails", amount_fen=500)
    await Refund.filter(id=doomed.json()["id"]).update(status="failed")
    failed = await refund_post(client, finance, other.id, "other-fails", amount_fen=500)
    assert failed.status_code == 200 and failed.json()["id"] == doomed.json()["id"]
    assert failed.json()["status"] == "failed" and await Refund.filter(order_id=other.id).count() == 1

    refunds = await Refund.filter(order_id=order.id).order_by("id")
    assert [r.amount_fen for r in refunds] == [100, 5_000, 4_900]
    order = await Order.get(id=order.id)
    assert order.refunded_fen == order.refund_reserved_fen == 10_000
    # The audit says exactly what happened: one row per refund created, none for a replay or a refusal.
    trail = await AuditLogEntry.filter(action="orders.refund", target_id=str(order.id)).order_by("id")
    assert [(e.detail["amount_fen"], e.detail["refund_id"]) for e in trail] == [(r.amount_fen, r.id) for r in refunds]


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


async def test_the_same_key_twenty_times_at_once_gives_one_refund(client, redis):
    finance = await make_staff("finance")
    customer = await make_customer()
    order = await make_order(customer, unit_price_fen=5_000)
    await pay_in_sandbox(client, customer, order)
    await run_jobs(redis)
    responses = await asyncio.gather(*[
        refund_post(client, finance, order.id, "same-key-burst", amount_fen=700) for _ in range(20)
    ])
    assert sorted(r.status_code for r in responses) == [200] * 19 + [201], [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert await Refund.filter(order_id=order.id).count() == 1
    assert (await Order.get(id=order.id)).refund_reserved_fen == 700
    assert await AuditLogEntry.filter(action="orders.refund", target_id=str(order.id)).count() == 1
    await run_jobs(redis)
    assert (await Order.get(id=order.id)).refunded_fen == 700


async def test_twenty_keys_at_once_never_refund_more_than_was_paid(client, redis):
    # Twenty refunds of 300 of a 5,000 order, each with its own key: sixteen fit, four are refused.
    finance = await make_staff("finance")
    customer = await make_customer()
    order = await make_order(customer, unit_price_fen=5_000)
    await pay_in_sandbox(client, customer, order)
    await run_jobs(redis)
    responses = await asyncio.gather(*[
        refund_post(client, finance, order.id, f"many-keys-{i:02d}", amount_fen=300) for i in range(20)
    ])
    assert set(r.status_code for r in responses) <= {201, 422}, [r.text for r in responses]
    granted = [r for r in responses if r.status_code == 201]
    assert len(granted) == 16
    assert all(r.json()["code"] == "refund_too_large" for r in responses if r.status_code == 422)
    refunds = await Refund.filter(order_id=order.id)
    assert {r.id for r in refunds} == {r.json()["id"] for r in granted}
    assert (await Order.get(id=order.id)).refund_reserved_fen == 4_800
    assert await AuditLogEntry.filter(action="orders.refund", target_id=str(order.id)).count() == 16
    await run_jobs(redis)
    order = await Order.get(id=order.id)
    assert order.refunded_fen == 4_800 <= order.paid_fen
