"""PIPL rights: a customer exports their data and asks for erasure; erasure keeps money and points sums."""

from __future__ import annotations

from kernel.identity.models import Customer
from kernel.outbox.models import OutboxMessage
from tests.factories import customer_headers, make_customer, run_worker


async def test_export_contains_profile_with_masked_phone(client):
    customer = await make_customer(nickname="Export Me", phone="13700001234")
    response = await client.get("/app/me/data-export", headers=customer_headers(customer))
    assert response.status_code == 200
    profile = response.json()["profile"]
    assert profile["nickname"] == "Export Me" and profile["phone"] == "137****1234"
    assert "13700001234" not in response.text and "openid" not in response.text


async def test_erasure_anonymises_once_and_revokes_access(client, redis):
    customer = await make_customer(nickname="Forget Me", phone="13700005678")
    headers = customer_headers(customer)
    first = await client.post("/app/me/erasure", headers=headers)
    assert first.status_code == 202
    again = await client.post("/app/me/erasure", headers=headers)
    assert again.status_code == 409 and again.json()["code"] == "erasure_already_requested"
    assert await OutboxMessage.filter(job_name="kernel.erase_customer", args=[customer.id]).count() == 1

    await run_worker(redis)
    erased = await Customer.get(id=customer.id)
    assert erased.deleted_at is not None and erased.nickname == "" and erased.phone_sealed is None
    assert erased.phone_hash is None and erased.openid == f"erased-{customer.id}"
    # The token issued before erasure no longer opens anything.
    after = await client.get("/app/me", headers=headers)
    assert after.status_code == 401 and after.json()["code"] == "account_erased"

    # Running the job again changes nothing.
    from kernel.db import transaction
    from kernel.privacy import erase_customer

    async with transaction() as conn:
        assert await erase_customer(conn, customer.id) is False


async def test_export_includes_points_history_and_erasure_keeps_ledger_sums(client, redis):
    from kernel.db import transaction
    from points_mall.models import PointsAccount, PointsLedgerEntry
    from points_mall.service import earn_points

    customer = await make_customer()
    async with transaction() as conn:
        await earn_points(conn, customer_id=customer.id, points=120, kind="adjustment",
                          ref=f"privacy-test-{customer.id}", reason="welcome")
    headers = customer_headers(customer)
    exported = (await client.get("/app/me/data-export", headers=headers)).json()
    assert exported["points_mall"]["account"]["balance"] == 120
    assert [e["delta"] for e in exported["points_mall"]["ledger"]] == [120]

    assert (await client.post("/app/me/erasure", headers=headers)).status_code == 202
    await run_worker(redis)
    entries = await PointsLedgerEntry.filter(customer_id=customer.id).values_list("delta", flat=True)
    account = await PointsAccount.get(customer_id=customer.id)
    assert sum(entries) == account.balance == 120
