"""Points routes: overview and ledger, consumptions at the front desk, rules and tiers, adjustments, liability."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone

from kernel import clock
from kernel.identity.models import AuditLogEntry
from tests.booking.factories import make_branch
from tests.factories import customer_headers, make_customer, make_staff, staff_headers
from tests.points_mall.factories import assert_ledger_consistent, give_points


async def test_overview_and_ledger_newest_first(client):
    customer = await make_customer()
    # Injected times stay in the past: tokens are issued at the injected time and PyJWT refuses a
    # token issued in the (real) future.
    clock.set_now(datetime(2025, 10, 10, 4, tzinfo=timezone.utc))
    await give_points(customer.id, 80, "t:" + secrets.token_hex(4), reason="Welcome gift")
    clock.set_now(datetime(2025, 11, 10, 4, tzinfo=timezone.utc))
    await give_points(customer.id, 20, "t:" + secrets.token_hex(4), reason="Survey")
    clock.set_now(datetime(2026, 10, 10, 4, tzinfo=timezone.utc))  # October's 80 expire at 1 November 2026
    headers = customer_headers(customer)
    response = await client.get("/app/points", headers=headers)
    assert response.status_code == 200, response.text
    overview = response.json()
    assert overview["balance"] == 100 and overview["spendable"] == 100 and overview["pending"] == 0
    assert overview["expiring_soon"] == 80
    page = (await client.get("/app/points/ledger", params={"limit": 1}, headers=headers)).json()
    assert page["total"] == 2 and page["items"][0]["reason"] == "Survey" and page["items"][0]["delta"] == 20
    assert "ref" not in page["items"][0]


async def test_front_desk_records_consumption_idempotently_and_refunds(client):
    customer = await make_customer()
    desk = await make_staff("front_desk")
    headers = staff_headers(desk)
    body = {"customer_id": customer.id, "amount_fen": 68_000, "external_ref": "HIS-" + secrets.token_hex(4),
            "branch_id": (await make_branch()).id, "service_id": 3}
    first = await client.post("/admin/consumptions", json=body, headers=headers)
    again = await client.post("/admin/consumptions", json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert again.json()["id"] == first.json()["id"]
    assert first.json()["points"] == 680 and first.json()["points_status"] == "pending"
    other = await client.post("/admin/consumptions", json={**body, "amount_fen": 1}, headers=headers)
    assert other.status_code == 409 and other.json()["code"] == "external_ref_reused"
    missing = await client.post("/admin/consumptions", json={**body, "customer_id": 999_999_999,
                                                             "external_ref": "x" + secrets.token_hex(3)}, headers=headers)
    assert missing.status_code == 404

    cid = first.json()["id"]
    refund = await client.post(f"/admin/consumptions/{cid}/refund", json={"refunded_fen": 68_000, "ref": "R1"},
                               headers=headers)
    assert refund.status_code == 200 and refund.json()["points_status"] == "cancelled"
    too_much = await client.post(f"/admin/consumptions/{cid}/refund", json={"refunded_fen": 1, "ref": "R2"},
                                 headers=headers)
    assert too_much.status_code == 409 and too_much.json()["code"] == "refund_exceeds_amount"
    actions = await AuditLogEntry.filter(target_type="consumption", target_id=str(cid)).values_list("action", flat=True)
    assert "points.consumption_record" in actions and "points.consumption_refund" in actions
    await assert_ledger_consistent(customer.id)


async def test_adjustment_is_admin_only_audited_and_never_negative(client):
    customer = await make_customer()
    admin = await make_staff("admin")
    campaign = await make_staff("campaign")
    body = {"customer_id": customer.id, "points": 50, "reason": "Compensation for a late appointment"}
    refused = await client.post("/admin/points/adjustments", json=body, headers=staff_headers(campaign))
    assert refused.status_code == 403
    key = {"Idempotency-Key": "adj-" + secrets.token_hex(4)}
    done = await client.post("/admin/points/adjustments", json=body, headers={**staff_headers(admin), **key})
    repeat = await client.post("/admin/points/adjustments", json=body, headers={**staff_headers(admin), **key})
    assert done.status_code == 201 and done.json()["balance"] == 50
    assert repeat.json()["entry"]["id"] == done.json()["entry"]["id"] and repeat.json()["balance"] == 50
    too_much = await client.post("/admin/points/adjustments", json={**body, "points": -51}, headers=staff_headers(admin))
    assert too_much.status_code == 409 and too_much.json()["code"] == "insufficient_points"
    zero = await client.post("/admin/points/adjustments", json={**body, "points": 0}, headers=staff_headers(admin))
    assert zero.status_code == 422 and zero.json()["detail"]["field"] == "points"
    audit = await AuditLogEntry.filter(action="points.adjust", target_id=str(customer.id))
    assert len(audit) == 1 and audit[0].staff_id == admin.id and audit[0].detail["reason"].startswith("Compensation")
    ledger = (await client.get(f"/admin/points/customers/{customer.id}/ledger", headers=staff_headers(campaign))).json()
    assert ledger["items"][0]["kind"] == "adjustment" and ledger["items"][0]["ref"].startswith("adjustment:")
    assert await assert_ledger_consistent(customer.id) == 50


async def test_rules_and_tiers_are_configured_by_campaign_staff(client):
    campaign = await make_staff("campaign")
    desk = await make_staff("front_desk")
    headers = staff_headers(campaign)
    rules = (await client.get("/admin/points/rules", headers=headers)).json()
    assert rules["makeup_enabled"] is False and rules["expiry_months"] == 12
    bad = await client.patch("/admin/points/rules", json={"checkin_bonus": {"9": 10}, "checkin_cycle_days": 7},
                             headers=headers)
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "checkin_bonus"
    assert (await client.patch("/admin/points/rules", json={"pending_days": 5}, headers=staff_headers(desk))).status_code == 403
    ok = await client.patch("/admin/points/rules", json={"pending_days": rules["pending_days"]}, headers=headers)
    assert ok.status_code == 200 and ok.json()["updated_by_staff_id"] == campaign.id

    name = "Platinum " + secrets.token_hex(2)
    level = 50 + secrets.randbelow(40)
    created = await client.post("/admin/points/tiers", json={"name": name, "level": level, "min_spend_fen": 9_000_000,
                                                             "multiplier_pct": 130, "is_active": False}, headers=headers)
    assert created.status_code == 201, created.text
    changed = await client.patch(f"/admin/points/tiers/{created.json()['id']}", json={"min_spend_fen": None,
                                                                                     "min_referrals": 12}, headers=headers)
    assert changed.json()["min_spend_fen"] is None and changed.json()["min_referrals"] == 12
    dup = await client.post("/admin/points/tiers", json={"name": name + "x", "level": level}, headers=headers)
    assert dup.status_code == 409


async def test_liability_report(client):
    finance = await make_staff("finance")
    customer = await make_customer()
    await give_points(customer.id, 1234, "t:" + secrets.token_hex(4))
    report = await client.get("/admin/points/liability", headers=staff_headers(finance))
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["outstanding"] >= 1234 and body["customers_with_points"] >= 1
    month = (clock.now().astimezone(clock.clinic_zone()).replace(day=1) + timedelta(days=400)).strftime("%Y-%m")
    assert any(row["points"] >= 1234 for row in body["expiring_by_month"])
    assert all(len(row["month"]) == 7 for row in body["expiring_by_month"]) and month


async def test_calendar_month_is_validated_and_data_is_the_callers(client):
    customer = await make_customer()
    bad = await client.get("/app/check-ins", params={"month": "2026-13"}, headers=customer_headers(customer))
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "month"
    await give_points(customer.id, 77, "t:" + secrets.token_hex(4))
    stranger = await make_customer()
    theirs = (await client.get("/app/points/ledger", headers=customer_headers(stranger))).json()
    assert theirs["total"] == 0
    assert (await client.get("/app/points", headers=customer_headers(stranger))).json()["balance"] == 0


async def test_consumption_list_says_where_each_ones_points_stand(client):
    customer = await make_customer()
    headers = staff_headers(await make_staff("front_desk"))

    async def record(amount_fen: int) -> int:
        body = {"customer_id": customer.id, "amount_fen": amount_fen, "external_ref": "HIS-" + secrets.token_hex(4)}
        return (await client.post("/admin/consumptions", json=body, headers=headers)).json()["id"]

    held, refunded, too_small = await record(20_000), await record(30_000), await record(50)
    await client.post(f"/admin/consumptions/{refunded}/refund", json={"refunded_fen": 30_000, "ref": "R1"},
                      headers=headers)
    page = (await client.get("/admin/consumptions", params={"customer_id": customer.id}, headers=headers)).json()
    assert page["total"] == 3
    assert {c["id"]: c["points_status"] for c in page["items"]} == {
        held: "pending", refunded: "cancelled", too_small: "none"
    }
