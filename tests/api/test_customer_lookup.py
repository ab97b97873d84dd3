"""The front desk finds a customer by part of the name, the phone's last four digits or the referral code."""

from __future__ import annotations

import secrets

from kernel.identity.models import AuditLogEntry
from tests.factories import make_customer, make_staff, staff_headers


async def test_lookup_by_name_last_four_digits_and_referral_code(client):
    tag = secrets.token_hex(3)
    wanted = await make_customer(nickname=f"林{tag}", phone="13900004321")
    other = await make_customer(nickname=f"林{tag}二", phone="13900001234")
    await make_customer(nickname=f"erased{tag}", phone="13900004321", deleted_at=wanted.created_at)
    member = await make_staff("front_desk")
    desk = staff_headers(member)

    by_name = (await client.get("/admin/customer-lookup", params={"name": f"林{tag}"}, headers=desk)).json()
    assert {c["id"] for c in by_name["items"]} == {wanted.id, other.id}
    both = await client.get("/admin/customer-lookup", params={"name": tag, "phone_last4": "4321"}, headers=desk)
    assert [c["id"] for c in both.json()["items"]] == [wanted.id]  # every clue must match; the erased one never
    assert both.json()["items"][0]["phone"] == "139****4321"
    by_code = await client.get("/admin/customer-lookup", params={"referral_code": other.referral_code.lower()},
                               headers=desk)
    assert [c["id"] for c in by_code.json()["items"]] == [other.id]
    assert await AuditLogEntry.filter(action="customer.lookup", staff_id=member.id).count() == 3


async def test_lookup_needs_a_clue_and_four_digits(client):
    desk = staff_headers(await make_staff("front_desk"))
    nothing = await client.get("/admin/customer-lookup", headers=desk)
    assert nothing.status_code == 422 and nothing.json()["detail"]["field"] == "name"
    short = await client.get("/admin/customer-lookup", params={"phone_last4": "12a"}, headers=desk)
    assert short.status_code == 422 and short.json()["detail"]["field"] == "phone_last4"


async def test_lookup_is_front_desk_work(client):
    refused = await client.get("/admin/customer-lookup", params={"name": "x"},
                               headers=staff_headers(await make_staff("finance")))
    assert refused.status_code == 403 and refused.json()["code"] == "role_required"
