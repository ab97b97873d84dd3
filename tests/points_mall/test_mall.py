"""The points mall: stock under a crowd, one customer's concurrent redemptions, idempotency, vouchers, cancel."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta

from kernel import clock
from kernel.db import transaction
from kernel.identity.models import AuditLogEntry
from points_mall import tasks
from points_mall.models import MallItem, MallRedemption, PointsLedgerEntry, Voucher, VoucherStatus
from points_mall.rules import update_rules
from tests.booking.factories import make_branch
from tests.factories import customer_headers, make_staff, staff_headers
from tests.points_mall.factories import assert_ledger_consistent, balance_of, funded_customer, make_item


def key() -> str:
    return "k-" + secrets.token_hex(8)


async def redeem(client, customer, item_id: int, quantity: int = 1, idempotency_key: str | None = None):
    headers = {**customer_headers(customer), "Idempotency-Key": idempotency_key or key()}
    return await client.post("/app/mall/redemptions", json={"item_id": item_id, "quantity": quantity}, headers=headers)


async def test_two_hundred_customers_twenty_in_stock(client):
    item = await make_item(stock_total=20, points_price=300)
    customers = [await funded_customer(500) for _ in range(200)]
    responses = await asyncio.gather(*[redeem(client, c, item.id) for c in customers])
    codes = [r.status_code for r in responses]
    assert codes.count(201) == 20, [r.text for r in responses if r.status_code not in (201, 409)][:3]
    refused = [r for r in responses if r.status_code != 201]
    assert len(refused) == 180 and all(r.status_code == 409 and r.json()["code"] == "out_of_stock" for r in refused)
    item = await MallItem.get(id=item.id)
    assert item.stock_reserved == 20 and item.stock_total - item.stock_reserved == 0
    assert await MallRedemption.filter(item_id=item.id).count() == 20
    assert await Voucher.filter(source_type="mall_redemption",
                                source_id__in=[str(r.json()["id"]) for r in responses if r.status_code == 201]).count() == 20
    balances = {c.id: await assert_ledger_consistent(c.id) for c in customers}
    winners = {r.json()["customer_id"] for r in responses if r.status_code == 201}
    assert all(balances[c] == 200 for c in winners)
    assert all(balances[c.id] == 500 for c in customers if c.id not in winners)


async def test_one_customer_racing_never_overspends_or_passes_the_limit(client):
    # Balance covers 3 units, the limit is 4, stock is plenty: exactly 3 succeed.
    poor = await funded_customer(950)
    item = await make_item(stock_total=100, points_price=300, limit_per_customer=4)
    responses = await asyncio.gather(*[redeem(client, poor, item.id) for _ in range(15)])
    assert sorted(r.status_code for r in responses).count(201) == 3
    assert {r.json()["code"] for r in responses if r.status_code != 201} == {"insufficient_points"}
    assert await assert_ledger_consistent(poor.id) == 50

    # Rich customer, limit 2 per month: exactly 2 succeed.
    rich = await funded_customer(100_000)
    limited = await make_item(stock_total=100, points_price=10, limit_per_month=2)
    responses = await asyncio.gather(*[redeem(client, rich, limited.id) for _ in range(15)])
    assert sorted(r.status_code for r in responses).count(201) == 2
    assert {r.json()["code"] for r in responses if r.status_code != 201} == {"limit_reached"}
    assert (await MallItem.get(id=limited.id)).stock_reserved == 2
    assert await assert_ledger_consistent(rich.id) == 100_000 - 20


async def test_same_idempotency_key_gives_one_redemption(client):
    customer = await funded_customer(1000)
    item = await make_item(stock_total=10, points_price=100)
    k = key()
    first = await redeem(client, customer, item.id, idempotency_key=k)
    again = await redeem(client, customer, item.id, idempotency_key=k)
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"] and again.json()["vouchers"] == first.json()["vouchers"]
    racing_key = key()
    racing = await asyncio.gather(*[redeem(client, customer, item.id, idempotency_key=racing_key) for _ in range(10)])
    assert len({r.json()["id"] for r in racing}) == 1 and sorted(r.status_code for r in racing)[0] == 200
    assert await MallRedemption.filter(customer_id=customer.id).count() == 2
    assert await balance_of(customer.id) == 800
    other = await redeem(client, customer, item.id, quantity=2, idempotency_key=k)
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"
    missing = await client.post("/app/mall/redemptions", json={"item_id": item.id}, headers=customer_headers(customer))
    assert missing.status_code == 400


async def test_listing_says_why_not(client):
    customer = await funded_customer(250)
    cheap = await make_item(points_price=100, title="Blind box " + secrets.token_hex(2))
    dear = await make_item(points_price=300)
    gone = await make_item(points_price=10, stock_total=0)
    gold = await make_item(points_price=10, min_tier_level=99)
    hidden = await make_item(points_price=10, on_shelf=False)
    later = await make_item(points_price=10, available_from=clock.now() + timedelta(days=3))
    body = (await client.get("/app/mall/items", headers=customer_headers(customer))).json()
    by_id = {i["id"]: i for i in body}
    assert by_id[cheap.id]["can_redeem"] is True and by_id[cheap.id]["reasons"] == []
    assert by_id[dear.id]["reasons"] == ["insufficient_points"]
    assert by_id[gone.id]["reasons"] == ["out_of_stock"]
    assert by_id[gold.id]["reasons"] == ["tier_required"]
    assert hidden.id not in by_id and later.id not in by_id
    assert (await client.get(f"/app/mall/items/{hidden.id}", headers=customer_headers(customer))).status_code == 404
    refused = await redeem(client, customer, gold.id)
    assert refused.status_code == 409 and refused.json()["code"] == "tier_required"
    refused = await redeem(client, customer, later.id)
    assert refused.status_code == 409 and refused.json()["code"] == "not_available"


async def test_editing_an_item_keeps_past_redemptions_and_stock_not_below_reserved(client):
    staff = await make_staff("campaign")
    headers = staff_headers(staff)
    branch = await make_branch()
    created = await client.post("/admin/mall/items", json={
        "kind": "service_voucher", "title": "Hydrating facial", "points_price": 100, "stock_total": 5,
        "on_shelf": True, "branch_ids": [branch.id], "voucher_valid_days": 10}, headers=headers)
    assert created.status_code == 201, created.text
    item_id = created.json()["id"]
    customer = await funded_customer(1000)
    done = (await redeem(client, customer, item_id, quantity=3)).json()
    changed = await client.patch(f"/admin/mall/items/{item_id}", json={"title": "Deluxe facial", "points_price": 500},
                                 headers=headers)
    assert changed.status_code == 200 and changed.json()["title"] == "Deluxe facial"
    redemption = await MallRedemption.get(id=done["id"])
    assert (redemption.item_title, redemption.unit_points, redemption.points_spent) == ("Hydrating facial", 100, 300)
    assert {v.title for v in await Voucher.filter(source_id=str(done["id"]), source_type="mall_redemption")} == {
        "Hydrating facial"}
    below = await client.patch(f"/admin/mall/items/{item_id}", json={"stock_total": 2}, headers=headers)
    assert below.status_code == 422 and below.json()["code"] == "stock_below_reserved"
    assert below.json()["detail"] == {"field": "stock_total", "reserved": 3}
    ok = await client.patch(f"/admin/mall/items/{item_id}", json={"stock_total": 3}, headers=headers)
    assert ok.json()["stock_available"] == 0
    audit = await AuditLogEntry.filter(target_type="mall_item", target_id=str(item_id)).values_list("action", flat=True)
    assert "mall.item_create" in audit and "mall.item_update" in audit


async def test_front_desk_redeems_once_at_the_right_branch(client):
    customer = await funded_customer(500)
    here, there, elsewhere = await make_branch(), await make_branch(), await make_branch()
    item = await make_item(points_price=100, branch_ids=[here.id, there.id], kind="service_voucher")
    body = (await redeem(client, customer, item.id)).json()
    code = body["vouchers"][0]["code"]
    assert body["vouchers"][0]["qr_text"].endswith(code)
    desk = await make_staff("front_desk")
    headers = staff_headers(desk)
    looked = (await client.get(f"/admin/vouchers/{code.lower()}", headers=headers)).json()
    assert looked["redeemable"] is True and looked["customer_id"] == customer.id
    wrong = await client.post(f"/admin/vouchers/{code}/redeem", json={"branch_id": elsewhere.id}, headers=headers)
    assert wrong.status_code == 409 and wrong.json()["code"] == "voucher_wrong_branch"
    attempts = await asyncio.gather(*[
        client.post(f"/admin/vouchers/{code}/redeem", json={"branch_id": there.id}, headers=headers)
        for _ in range(20)
    ])
    assert sorted(r.status_code for r in attempts).count(200) == 1
    assert {r.json()["code"] for r in attempts if r.status_code != 200} == {"voucher_already_redeemed"}
    audit = await AuditLogEntry.filter(action="voucher.redeem", target_id=str(body["vouchers"][0]["id"]))
    assert len(audit) == 1 and audit[0].staff_id == desk.id and audit[0].detail["branch_id"] == there.id
    after = (await client.get(f"/admin/vouchers/{code}", headers=headers)).json()
    assert after["refusal"] == "voucher_already_redeemed" and after["redeemed_by_staff_id"] == desk.id
    # The customer cannot cancel it any more.
    cancel = await client.post(f"/app/vouchers/{body['vouchers'][0]['id']}/cancel", headers=customer_headers(customer))
    assert cancel.status_code == 409 and cancel.json()["code"] == "voucher_already_redeemed"
    unknown = await client.get("/admin/vouchers/NOSUCHCODE2345", headers=headers)
    assert unknown.status_code == 404


async def test_cancel_returns_points_and_stock_exactly_once(client):
    customer = await funded_customer(1000)
    item = await make_item(points_price=150, stock_total=5)
    body = (await redeem(client, customer, item.id, quantity=2)).json()
    assert await balance_of(customer.id) == 700
    voucher_id = body["vouchers"][0]["id"]
    headers = customer_headers(customer)
    attempts = await asyncio.gather(*[client.post(f"/app/vouchers/{voucher_id}/cancel", headers=headers)
                                      for _ in range(10)])
    assert sorted(r.status_code for r in attempts).count(200) == 1
    assert {r.json()["code"] for r in attempts if r.status_code != 200} == {"voucher_cancelled"}
    assert await balance_of(customer.id) == 850
    assert (await MallItem.get(id=item.id)).stock_reserved == 1
    reversals = await PointsLedgerEntry.filter(customer_id=customer.id, kind="reversal")
    assert [e.delta for e in reversals] == [150]
    redemption = await MallRedemption.get(id=body["id"])
    assert redemption.cancelled_quantity == 1 and redemption.status == "active"
    # Another customer's voucher is not found.
    stranger = await funded_customer(0)
    other = await client.post(f"/app/vouchers/{body['vouchers'][1]['id']}/cancel", headers=customer_headers(stranger))
    assert other.status_code == 404
    last = await client.post(f"/app/vouchers/{body['vouchers'][1]['id']}/cancel", headers=headers)
    assert last.status_code == 200
    assert (await MallRedemption.get(id=body["id"])).status == "cancelled"
    assert await assert_ledger_consistent(customer.id) == 1000
    assert (await MallItem.get(id=item.id)).stock_reserved == 0
    listed = (await client.get("/app/vouchers", params={"status": "cancelled"}, headers=headers)).json()
    assert {v["id"] for v in listed["items"]} >= {body["vouchers"][0]["id"], body["vouchers"][1]["id"]}


async def test_voucher_expiry_job_keeps_points_by_default_and_returns_them_when_configured(client):
    customer = await funded_customer(1000)
    item = await make_item(points_price=100, stock_total=10, voucher_valid_days=1)
    await redeem(client, customer, item.id)
    clock.set_now(clock.now() + timedelta(days=3))
    await tasks.expire_vouchers({})
    assert await tasks.expire_vouchers({}) == 0
    vouchers = await Voucher.filter(customer_id=customer.id)
    assert [v.status for v in vouchers] == [VoucherStatus.expired]
    assert await balance_of(customer.id) == 900 and (await MallItem.get(id=item.id)).stock_reserved == 1

    async with transaction() as conn:
        await update_rules(conn, None, {"voucher_expiry_returns_points": True})
    try:
        clock.set_now(None)
        await redeem(client, customer, item.id)
        clock.set_now(clock.now() + timedelta(days=3))
        await tasks.expire_vouchers({})
        await tasks.expire_vouchers({})
    finally:
        async with transaction() as conn:
            await update_rules(conn, None, {"voucher_expiry_returns_points": False})
    assert await assert_ledger_consistent(customer.id) == 900
    assert (await MallItem.get(id=item.id)).stock_reserved == 1


async def test_admin_redemptions_list_and_csv_export(client):
    customer = await funded_customer(1000, nickname="=HYPERLINK(evil)")
    item = await make_item(points_price=100, title="Blind box 盲盒")
    done = (await redeem(client, customer, item.id)).json()
    finance = await make_staff("finance")
    listed = (await client.get("/admin/mall/redemptions", params={"item_id": item.id},
                               headers=staff_headers(finance))).json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == done["id"]
    export = await client.get("/admin/mall/redemptions/export", params={"customer_id": customer.id},
                              headers=staff_headers(finance))
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    text = export.content.decode("utf-8-sig")
    lines = text.strip().splitlines()
    assert lines[0].startswith("redemption_id,") and len(lines) == 2
    assert "Blind box 盲盒" in lines[1] and "'=HYPERLINK(evil)" in lines[1]
    desk = await make_staff("front_desk")
    assert (await client.get("/admin/mall/redemptions/export", headers=staff_headers(desk))).status_code == 403
