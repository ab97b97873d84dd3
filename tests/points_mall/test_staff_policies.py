"""Policies a careful clinic keeps (issue 12, item 11): large consumptions need a second member's approval, branch
ids must name a branch, and an erased customer's vouchers cannot be redeemed."""

from __future__ import annotations

import asyncio
import secrets

from kernel.identity.models import AuditLogEntry
from kernel.outbox.models import OutboxMessage
from points_mall.models import (
    Consumption,
    ConsumptionApproval,
    MallItem,
    PendingPoints,
    PointsAccount,
    PointsLedgerEntry,
    TierChange,
    Voucher,
    VoucherStatus,
)
from points_mall.settings import get_points_settings, override
from tests.booking.factories import make_branch
from tests.factories import customer_headers, make_customer, make_staff, run_worker, staff_headers
from tests.points_mall.factories import funded_customer, make_item


def consumption(customer_id: int, amount_fen: int, ref: str | None = None, **extra) -> dict:
    return {"customer_id": customer_id, "amount_fen": amount_fen,
            "external_ref": ref or "visit-" + secrets.token_hex(6)} | extra


async def nothing_earned(customer_id: int) -> bool:
    return not (await Consumption.filter(customer_id=customer_id).exists()
                or await PendingPoints.filter(customer_id=customer_id).exists()
                or await PointsLedgerEntry.filter(customer_id=customer_id, kind="consumption").exists()
                or await TierChange.filter(customer_id=customer_id).exists()
                or await OutboxMessage.filter(job_name="referrals.consumption_recorded", args__contains=[customer_id])
                .exists())


async def test_default_threshold_is_twenty_thousand_yuan():
    assert get_points_settings().consumption_approval_above_fen == 2_000_000


async def test_a_huge_consumption_waits_for_a_second_member_and_earns_once_approved(client):
    # The attack: one front-desk member recorded ¥100,000,000 (100 million pending points, the top tier at once).
    desk, colleague, finance = await make_staff("front_desk"), await make_staff("front_desk"), await make_staff("finance")
    customer = await make_customer()
    body = consumption(customer.id, 10_000_000_000, ref="huge-1")
    recorded = await client.post("/admin/consumptions", json=body, headers=staff_headers(desk))
    assert recorded.status_code == 202, recorded.text
    approval = recorded.json()
    assert approval["status"] == "pending" and approval["recorded_by_id"] == desk.id
    assert await nothing_earned(customer.id)
    # A retry is the same request; other details under the same ref are refused.
    again = await client.post("/admin/consumptions", json=body, headers=staff_headers(desk))
    assert again.status_code == 202 and again.json()["id"] == approval["id"]
    other = await client.post("/admin/consumptions", json=body | {"amount_fen": 3_000_000},
                              headers=staff_headers(desk))
    assert other.status_code == 409 and other.json()["code"] == "external_ref_reused"
    assert await ConsumptionApproval.filter(customer_id=customer.id).count() == 1

    url = f"/admin/consumption-approvals/{approval['id']}"
    own = await client.post(f"{url}/approve", headers=staff_headers(desk))
    assert own.status_code == 403 and own.json()["code"] == "maker_checker"
    campaign = await client.post(f"{url}/approve", headers=staff_headers(await make_staff("campaign")))
    assert campaign.status_code == 403 and campaign.json()["code"] == "role_required"
    assert await nothing_earned(customer.id)
    listed = await client.get("/admin/consumption-approvals", params={"status": "pending", "limit": 200},
                              headers=staff_headers(finance))
    assert approval["id"] in [a["id"] for a in listed.json()["items"]]

    # Two members approve at once: one consumption, once.
    answers = await asyncio.gather(
        client.post(f"{url}/approve", json={"note": "checked the invoice"}, headers=staff_headers(colleague)),
        client.post(f"{url}/approve", headers=staff_headers(finance)),
    )
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    won = next(a for a in answers if a.status_code == 200).json()
    assert won["status"] == "approved" and won["consumption_id"] is not None
    assert next(a for a in answers if a.status_code == 409).json()["code"] == "consumption_approval_decided"
    recorded_consumptions = await Consumption.filter(customer_id=customer.id)
    assert [(c.amount_fen, c.staff_id, c.external_ref) for c in recorded_consumptions] == [
        (10_000_000_000, desk.id, "front_desk:huge-1")]
    assert (await PointsAccount.get(customer_id=customer.id)).pending > 0
    # After approval a retry of the recording still answers the approval, never a second consumption.
    retried = await client.post("/admin/consumptions", json=body, headers=staff_headers(desk))
    assert retried.status_code == 202 and retried.json()["status"] == "approved"
    assert await Consumption.filter(customer_id=customer.id).count() == 1
    trail = await AuditLogEntry.filter(target_type="consumption_approval", target_id=str(approval["id"])).order_by("id")
    assert [(e.action, e.staff_id) for e in trail][-1] == ("points.consumption_approve", won["decided_by_id"])
    assert trail[0].action == "points.consumption_submit" and trail[0].staff_id == desk.id


async def test_at_or_below_the_threshold_is_recorded_at_once_and_a_rejection_earns_nothing(client):
    desk, manager = await make_staff("front_desk"), await make_staff("front_desk")
    customer = await make_customer()
    with override(consumption_approval_above_fen=50_000):
        at = await client.post("/admin/consumptions", json=consumption(customer.id, 50_000),
                               headers=staff_headers(desk))
        assert at.status_code == 201 and at.json()["points"] > 0, at.text
        above = await client.post("/admin/consumptions", json=consumption(customer.id, 50_001),
                                  headers=staff_headers(desk))
        assert above.status_code == 202
    exported = await client.get("/app/me/data-export", headers=customer_headers(customer))
    assert [a["amount_fen"] for a in exported.json()["points_mall"]["consumption_approvals"]] == [50_001]
    url = f"/admin/consumption-approvals/{above.json()['id']}"
    rejected = await client.post(f"{url}/reject", json={"note": "typo: one zero too many"},
                                 headers=staff_headers(manager))
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    late = await client.post(f"{url}/approve", headers=staff_headers(await make_staff("finance")))
    assert late.status_code == 409 and late.json()["code"] == "consumption_approval_decided"
    assert [c.amount_fen for c in await Consumption.filter(customer_id=customer.id)] == [50_000]
    assert await AuditLogEntry.filter(action="points.consumption_reject", target_id=str(above.json()["id"]),
                                      staff_id=manager.id).exists()
    missing = await client.post("/admin/consumption-approvals/999999999/approve", headers=staff_headers(manager))
    assert missing.status_code == 404 and missing.json()["code"] == "consumption_approval_not_found"


async def test_branch_ids_that_name_no_branch_are_refused_everywhere(client):
    branch = await make_branch()
    desk, campaign = staff_headers(await make_staff("front_desk")), staff_headers(await make_staff("campaign"))
    customer = await make_customer()
    ghost = branch.id + 1_000_000

    recorded = await client.post("/admin/consumptions", json=consumption(customer.id, 1_000, branch_id=ghost),
                                 headers=desk)
    assert recorded.status_code == 422 and recorded.json()["code"] == "unknown_branch", recorded.text
    assert recorded.json()["detail"] == {"field": "branch_id", "unknown_branch_ids": [ghost]}
    assert not await Consumption.filter(customer_id=customer.id).exists()
    ok = await client.post("/admin/consumptions", json=consumption(customer.id, 1_000, branch_id=branch.id),
                           headers=desk)
    assert ok.status_code == 201

    item = {"kind": "gift", "title": "Lipstick " + secrets.token_hex(3), "points_price": 100, "stock_total": 5,
            "branch_ids": [branch.id, ghost]}
    created = await client.post("/admin/mall/items", json=item, headers=campaign)
    assert created.status_code == 422 and created.json()["detail"]["field"] == "branch_ids", created.text
    assert created.json()["detail"]["unknown_branch_ids"] == [ghost]
    assert not await MallItem.filter(title=item["title"]).exists()
    created = await client.post("/admin/mall/items", json=item | {"branch_ids": [branch.id]}, headers=campaign)
    assert created.status_code == 201, created.text
    changed = await client.patch(f"/admin/mall/items/{created.json()['id']}", json={"branch_ids": [ghost]},
                                 headers=campaign)
    assert changed.status_code == 422 and changed.json()["code"] == "unknown_branch"
    assert (await MallItem.get(id=created.json()["id"])).branch_ids == [branch.id]

    rich = await funded_customer(1_000)
    anywhere = await make_item(points_price=10)
    redeemed = await client.post("/app/mall/redemptions", json={"item_id": anywhere.id},
                                 headers=customer_headers(rich) | {"Idempotency-Key": "ghost-branch-1"})
    code = redeemed.json()["vouchers"][0]["code"]
    at_ghost = await client.post(f"/admin/vouchers/{code}/redeem", json={"branch_id": ghost}, headers=desk)
    assert at_ghost.status_code == 422 and at_ghost.json()["detail"]["field"] == "branch_id"
    assert (await Voucher.get(code=code)).status == VoucherStatus.issued


async def test_an_erased_customers_voucher_cannot_be_redeemed(client, redis):
    desk = staff_headers(await make_staff("front_desk"))
    branch = await make_branch()
    customer = await funded_customer(500)
    item = await make_item(points_price=100, stock_total=3)
    redeemed = await client.post("/app/mall/redemptions", json={"item_id": item.id, "quantity": 2},
                                 headers=customer_headers(customer) | {"Idempotency-Key": "before-erasure"})
    assert redeemed.status_code == 201, redeemed.text
    codes = [v["code"] for v in redeemed.json()["vouchers"]]
    used = await client.post(f"/admin/vouchers/{codes[0]}/redeem", json={"branch_id": branch.id}, headers=desk)
    assert used.status_code == 200

    assert (await client.post("/app/me/erasure", headers=customer_headers(customer))).status_code == 202
    await run_worker(redis)

    refused = await client.post(f"/admin/vouchers/{codes[1]}/redeem", json={"branch_id": branch.id}, headers=desk)
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "voucher_cancelled"
    vouchers = {v.code: v for v in await Voucher.filter(customer_id=customer.id)}
    assert vouchers[codes[0]].status == VoucherStatus.redeemed  # what happened stays recorded
    assert vouchers[codes[1]].status == VoucherStatus.cancelled
    # The unit went back to the mall; the ledger still sums to the balance.
    assert (await MallItem.get(id=item.id)).stock_reserved == 1
    entries = await PointsLedgerEntry.filter(customer_id=customer.id).values_list("delta", flat=True)
    assert sum(entries) == (await PointsAccount.get(customer_id=customer.id)).balance == 400
