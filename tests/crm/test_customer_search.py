"""Customer 360: search by the last four digits of the phone (a keyed hash, filled for customers stored
before it existed), by name and referral code, with filters; no response ever carries a full phone number."""

from __future__ import annotations

import secrets

from crm.models import CustomerTag, RfmClass, RfmScore, TagKind
from kernel import clock, crypto
from kernel.db import transaction
from kernel.identity.backfill import fill_phone_last4_hashes
from kernel.identity.models import Customer
from tests.crm.factories import make_tag
from tests.factories import customer_headers, make_customer, make_staff, staff_headers


def _phone() -> str:
    return "139" + "".join(secrets.choice("0123456789") for _ in range(8))


async def test_last_four_digits_find_the_customer_and_no_response_has_the_full_number(client):
    phone = _phone()
    other_phone = phone[:-4] + ("0000" if phone[-4:] != "0000" else "1111")
    customer = await make_customer(phone=phone, nickname="林小姐")
    await make_customer(phone=other_phone)
    staff = await make_staff("campaign", "front_desk")
    headers = staff_headers(staff)

    found = await client.get("/admin/customers", params={"q": phone[-4:], "limit": 200}, headers=headers)
    assert found.status_code == 200, found.text
    ids = [row["id"] for row in found.json()["items"]]
    assert customer.id in ids
    row = next(r for r in found.json()["items"] if r["id"] == customer.id)
    assert row["phone"] == crypto.mask_phone(phone)

    # The full number never leaves: search, the card, booking's history, the customer's own views and export.
    bodies = [found.text]
    for path in (f"/admin/customers/{customer.id}/card", f"/admin/customers/{customer.id}"):
        response = await client.get(path, headers=headers)
        assert response.status_code == 200, (path, response.text)
        bodies.append(response.text)
    for path in ("/app/me", "/app/me/data-export", "/app/crm/marketing"):
        response = await client.get(path, headers=customer_headers(customer))
        assert response.status_code == 200, (path, response.text)
        bodies.append(response.text)
    for text in bodies:
        assert phone not in text
        assert phone[3:] not in text  # not even the part after the prefix
    # The stored row has no clear phone either: sealed, hashed, masked.
    stored = await Customer.get(id=customer.id)
    assert phone not in f"{stored.phone_sealed}{stored.phone_hash}{stored.phone_masked}{stored.phone_last4_hash}"


async def test_customers_stored_before_the_hash_existed_are_filled_by_the_upgrade(client):
    phone = _phone()
    # As the row looked before migration kernel 0004: sealed phone, no last-four hash.
    legacy = await make_customer(phone=phone, phone_last4_hash=None)
    staff = await make_staff("front_desk")
    before = await client.get("/admin/customers", params={"q": phone[-4:], "limit": 200},
                              headers=staff_headers(staff))
    assert legacy.id not in [r["id"] for r in before.json()["items"]]
    async with transaction() as conn:
        assert await fill_phone_last4_hashes(conn) >= 1
        assert await fill_phone_last4_hashes(conn) == 0  # safe to run twice
    after = await client.get("/admin/customers", params={"q": phone[-4:], "limit": 200}, headers=staff_headers(staff))
    assert legacy.id in [r["id"] for r in after.json()["items"]]


async def test_bind_phone_stores_the_last_four_hash():
    from kernel.identity.service import bind_phone

    customer = await make_customer()
    phone = _phone()
    async with transaction() as conn:
        await bind_phone(conn, customer.id, phone)
    stored = await Customer.get(id=customer.id)
    assert stored.phone_last4_hash == crypto.last4_hash(phone)


async def test_search_by_name_code_and_filters(client):
    marker = await make_tag()
    code_customer = await make_customer(nickname="Zoë " + secrets.token_hex(3), birth_date=clock.local_today().replace(
        year=1990, day=1))
    await CustomerTag.create(customer_id=code_customer.id, tag_id=marker.id, source=TagKind.manual,
                             created_at=clock.now())
    await RfmScore.create(customer_id=code_customer.id, as_of=clock.local_today(), last_consumption_at=clock.now(),
                          recency_days=0, frequency=3, monetary_fen=500_000, rfm_class=RfmClass.important_value)
    headers = staff_headers(await make_staff("campaign"))
    by_code = await client.get("/admin/customers", params={"q": code_customer.referral_code.lower()}, headers=headers)
    assert [r["id"] for r in by_code.json()["items"]] == [code_customer.id]
    by_name = await client.get("/admin/customers", params={"q": code_customer.nickname[-6:]}, headers=headers)
    assert [r["id"] for r in by_name.json()["items"]] == [code_customer.id]
    filtered = await client.get("/admin/customers", params={
        "tag_id": marker.id, "rfm_class": "important_value", "spend_gte_fen": 500_000,
        "birthday_month": clock.local_today().month,
    }, headers=headers)
    assert [r["id"] for r in filtered.json()["items"]] == [code_customer.id]
    assert filtered.json()["items"][0]["rfm_class"] == "important_value"
    none = await client.get("/admin/customers", params={"tag_id": marker.id, "spend_gte_fen": 500_001}, headers=headers)
    assert none.json()["total"] == 0
    wildcard = await client.get("/admin/customers", params={"q": "%"}, headers=headers)
    assert wildcard.status_code == 200 and code_customer.id not in [r["id"] for r in wildcard.json()["items"]]
