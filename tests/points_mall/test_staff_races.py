"""Staff effects on points under concurrent requests: consumptions, refunds and adjustments happen once and never overdraw."""

from __future__ import annotations

import asyncio
import secrets

from kernel.identity.models import AuditLogEntry
from kernel.outbox.models import OutboxMessage
from points_mall.models import Consumption, ConsumptionRefund, PendingPoints, PointsLedgerEntry
from tests.factories import make_customer, make_staff, staff_headers
from tests.points_mall.factories import assert_ledger_consistent, funded_customer


async def test_one_consumption_recorded_ten_times_at_once_counts_once(client):
    customer = await make_customer()
    desk = staff_headers(await make_staff("front_desk"))
    body = {"customer_id": customer.id, "amount_fen": 50_000, "external_ref": "HIS-" + secrets.token_hex(4)}
    responses = await asyncio.gather(*[client.post("/admin/consumptions", json=body, headers=desk) for _ in range(10)])
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses if r.status_code != 201]
    assert len({r.json()["id"] for r in responses}) == 1
    external_ref = f"front_desk:{body['external_ref']}"
    assert await Consumption.filter(external_ref=external_ref).count() == 1
    assert await PendingPoints.filter(ref=f"consumption:{external_ref}").count() == 1
    consumption_id = responses[0].json()["id"]
    jobs = await OutboxMessage.filter(job_name="referrals.consumption_recorded").values_list("args", flat=True)
    assert sum(1 for args in jobs if args[0] == consumption_id) == 1
    await assert_ledger_consistent(customer.id)


async def test_concurrent_refunds_never_exceed_the_amount_and_each_ref_counts_once(client):
    customer = await make_customer()
    desk = staff_headers(await make_staff("front_desk"))
    body = {"customer_id": customer.id, "amount_fen": 10_000, "external_ref": "HIS-" + secrets.token_hex(4)}
    consumption_id = (await client.post("/admin/consumptions", json=body, headers=desk)).json()["id"]
    url = f"/admin/consumptions/{consumption_id}/refund"

    same = await asyncio.gather(*[client.post(url, json={"refunded_fen": 1_000, "ref": "R-same"}, headers=desk)
                                  for _ in range(5)])
    assert all(r.status_code == 200 for r in same) and {r.json()["refunded_fen"] for r in same} == {1_000}
    distinct = await asyncio.gather(*[client.post(url, json={"refunded_fen": 3_000, "ref": f"R-{i}"}, headers=desk)
                                      for i in range(8)])
    statuses = sorted(r.status_code for r in distinct)
    assert statuses == [200] * 3 + [409] * 5, statuses
    assert all(r.json()["code"] == "refund_exceeds_amount" for r in distinct if r.status_code == 409)
    consumption = await Consumption.get(id=consumption_id)
    assert consumption.refunded_fen == 10_000 and consumption.points_reversed == consumption.points
    assert await ConsumptionRefund.filter(consumption_id=consumption_id).count() == 4
    await assert_ledger_consistent(customer.id)


async def test_adjustments_race_once_per_key_and_never_overdraw(client):
    customer = await funded_customer(100)
    other = await make_customer()
    admin = await make_staff("admin")
    headers = staff_headers(admin)
    body = {"customer_id": customer.id, "points": 25, "reason": "Goodwill for a long wait"}
    key = {"Idempotency-Key": "adj-" + secrets.token_hex(4)}
    same = await asyncio.gather(*[client.post("/admin/points/adjustments", json=body, headers={**headers, **key})
                                  for _ in range(10)])
    assert all(r.status_code == 201 for r in same), [r.text for r in same if r.status_code != 201]
    assert len({r.json()["entry"]["id"] for r in same}) == 1 and {r.json()["balance"] for r in same} == {125}
    assert await AuditLogEntry.filter(action="points.adjust", target_id=str(customer.id)).count() == 1

    # The same key for another amount or another customer is a mistake, not a retry.
    for changed in ({**body, "points": -25}, {**body, "customer_id": other.id}):
        reused = await client.post("/admin/points/adjustments", json=changed, headers={**headers, **key})
        assert reused.status_code == 409 and reused.json()["code"] == "idempotency_key_reused", reused.text
    assert await PointsLedgerEntry.filter(customer_id=other.id).count() == 0

    take = {**body, "points": -40}
    taken = await asyncio.gather(*[
        client.post("/admin/points/adjustments", json=take, headers={**headers, "Idempotency-Key": f"take-{i}-{secrets.token_hex(4)}"})
        for i in range(8)
    ])
    statuses = sorted(r.status_code for r in taken)
    assert statuses == [201] * 3 + [409] * 5, statuses
    assert await assert_ledger_consistent(customer.id) == 5
