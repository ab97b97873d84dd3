"""Bad input to the points and mall routes gets a clear 4xx in the error format, never a 500 or a 503."""

from __future__ import annotations

import secrets

from tests.factories import customer_headers, make_customer, make_staff, staff_headers
from tests.points_mall.factories import funded_customer, make_item

TOO_BIG_FOR_BIGINT = 2**63


async def test_calendar_month_outside_the_calendar_is_a_422(client):
    headers = customer_headers(await make_customer())
    for month in ("9999-12", "0000-01", "0999-05"):
        response = await client.get("/app/check-ins", params={"month": month}, headers=headers)
        assert response.status_code == 422, (month, response.text)
        assert response.json()["detail"]["field"] == "month"
    assert (await client.get("/app/check-ins", params={"month": "9998-12"}, headers=headers)).status_code == 200


async def test_ids_beyond_the_bigint_columns_are_refused_by_validation(client):
    customer = await make_customer()
    desk = staff_headers(await make_staff("front_desk"))
    for extra in ({"branch_id": TOO_BIG_FOR_BIGINT}, {"service_id": 10**30}):
        body = {"customer_id": customer.id, "amount_fen": 100, "external_ref": "HIS-" + secrets.token_hex(4), **extra}
        response = await client.post("/admin/consumptions", json=body, headers=desk)
        assert response.status_code == 400, response.text
        assert response.json()["detail"]["field"] == next(iter(extra))

    buyer = await funded_customer(500)
    item = await make_item()
    redeemed = await client.post("/app/mall/redemptions", json={"item_id": item.id},
                                 headers={**customer_headers(buyer), "Idempotency-Key": "bad-" + secrets.token_hex(4)})
    code = redeemed.json()["vouchers"][0]["code"]
    response = await client.post(f"/admin/vouchers/{code}/redeem", json={"branch_id": TOO_BIG_FOR_BIGINT}, headers=desk)
    assert response.status_code == 400 and response.json()["detail"]["field"] == "branch_id"


async def test_item_windows_must_carry_an_offset_and_a_sane_year(client):
    headers = staff_headers(await make_staff("campaign"))
    base = {"kind": "gift", "title": "Mask", "points_price": 10, "stock_total": 3}
    naive_and_aware = {**base, "available_from": "2026-01-01T00:00:00", "available_until": "2027-01-01T00:00:00+08:00"}
    response = await client.post("/admin/mall/items", json=naive_and_aware, headers=headers)
    assert response.status_code == 400 and response.json()["detail"]["field"] == "available_from"
    ancient = {**base, "available_from": "0001-01-01T00:00:00+08:00"}
    response = await client.post("/admin/mall/items", json=ancient, headers=headers)
    assert response.status_code == 422 and response.json()["detail"]["field"] == "available_from"

    created = await client.post("/admin/mall/items", json={**base, "available_from": "2026-01-01T00:00:00+08:00"},
                                headers=headers)
    assert created.status_code == 201, created.text
    item_id = created.json()["id"]
    naive = await client.patch(f"/admin/mall/items/{item_id}", json={"available_until": "2030-01-01T00:00:00"},
                               headers=headers)
    assert naive.status_code == 400 and naive.json()["detail"]["field"] == "available_until"
    far = await client.patch(f"/admin/mall/items/{item_id}", json={"available_until": "9999-12-31T23:59:59-05:00"},
                             headers=headers)
    assert far.status_code == 422 and far.json()["detail"]["field"] == "available_until"


async def test_an_overlong_voucher_code_is_not_found(client):
    desk = staff_headers(await make_staff("front_desk"))
    response = await client.get("/admin/vouchers/" + "X" * 500, headers=desk)
    assert response.status_code == 404 and response.json()["code"] == "voucher_not_found"
    response = await client.post("/admin/vouchers/" + "X" * 500 + "/redeem", json={"branch_id": 1}, headers=desk)
    assert response.status_code == 404 and response.json()["code"] == "voucher_not_found"


async def test_bonus_days_must_be_ascii_numbers(client):
    headers = staff_headers(await make_staff("campaign"))
    for day in ("³", "٣", "x"):
        response = await client.patch("/admin/points/rules", json={"checkin_bonus": {day: 5}}, headers=headers)
        assert response.status_code == 422, (day, response.text)
        assert response.json()["detail"]["field"] == "checkin_bonus"
