"""What the customer guard may skip and what it may not: verified tokens are remembered by their exact
string (expiry still judged on each use), reads may use the last second's "active" answer, writes never,
and the check-in, the points overview and the shelf check erasure in their own first statement."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest

from kernel import clock
from kernel.identity import tokens
from kernel.identity.models import Customer
from kernel.identity.service import SEEN_ACTIVE
from kernel.identity.tokens import issue_customer_token
from points_mall.models import CheckIn, PointsAccount, PointsLedgerEntry
from tests.factories import customer_headers, make_customer, make_staff, staff_headers


async def _erase_row(customer: Customer) -> None:
    # What the erasure job leaves behind, as far as the guard is concerned.
    await Customer.filter(id=customer.id).update(deleted_at=clock.now())


@pytest.fixture
def seen_active_clock():
    """Move the read memo's clock by hand; put the real one back afterwards."""
    moments = [1_000.0]
    SEEN_ACTIVE.monotonic = lambda: moments[0]
    SEEN_ACTIVE._until.clear()
    yield moments
    SEEN_ACTIVE.monotonic = __import__("time").monotonic
    SEEN_ACTIVE._until.clear()


@pytest.mark.parametrize("with_account", [True, False], ids=["fast path", "general path"])
async def test_check_in_of_an_erased_customer_is_refused_and_writes_nothing(client, with_account):
    customer = await make_customer()
    if with_account:
        now = clock.now()
        await PointsAccount.create(customer_id=customer.id, created_at=now, updated_at=now)
    await _erase_row(customer)
    refused = await client.post("/app/check-ins", headers=customer_headers(customer))
    assert refused.status_code == 401 and refused.json()["code"] == "account_erased"
    assert not await CheckIn.filter(customer_id=customer.id).exists()
    assert not await PointsLedgerEntry.filter(customer_id=customer.id).exists()


async def test_a_read_may_use_the_last_second_a_write_never(client, seen_active_clock):
    customer = await make_customer()
    headers = customer_headers(customer)
    assert (await client.get("/app/points/ledger", headers=headers)).status_code == 200
    await _erase_row(customer)

    # Inside the stated second (each entry lives between half and all of it) a read is still answered from
    # this process's memory...
    seen_active_clock[0] += 0.25
    assert (await client.get("/app/points/ledger", headers=headers)).status_code == 200
    # ...but no write is: the guard (or the write's own statement) reads the row.
    for path in ("/app/check-ins", "/app/me/erasure"):
        refused = await client.post(path, headers=headers)
        assert refused.status_code == 401 and refused.json()["code"] == "account_erased", path

    # Once the second has passed, reads are refused too.
    seen_active_clock[0] += 0.8
    refused = await client.get("/app/points/ledger", headers=headers)
    assert refused.status_code == 401 and refused.json()["code"] == "account_erased"


async def test_the_overview_and_the_shelf_refuse_an_erased_customer_at_once(client, seen_active_clock):
    # Their own statement reads the customer row, so even inside the second the guard would have remembered
    # the customer as active, an erasure is refused at once; staff still see the erased customer's points.
    customer = await make_customer()
    headers = customer_headers(customer)
    for path in ("/app/points", "/app/mall/items"):
        assert (await client.get(path, headers=headers)).status_code == 200, path
    assert customer.id not in SEEN_ACTIVE._until  # the guard did not read the row: the statement did
    await _erase_row(customer)
    for path in ("/app/points", "/app/mall/items"):
        refused = await client.get(path, headers=headers)
        assert refused.status_code == 401 and refused.json()["code"] == "account_erased", path
    staff = await make_staff("front_desk")
    seen_by_staff = await client.get(f"/admin/points/customers/{customer.id}", headers=staff_headers(staff))
    assert seen_by_staff.status_code == 200, seen_by_staff.text


async def test_an_erased_customer_is_never_remembered_as_active(client, seen_active_clock):
    customer = await make_customer()
    await _erase_row(customer)
    for _ in range(2):
        refused = await client.get("/app/points/ledger", headers=customer_headers(customer))
        assert refused.status_code == 401 and refused.json()["code"] == "account_erased"
    assert customer.id not in SEEN_ACTIVE._until


async def test_a_remembered_token_still_expires(client):
    customer = await make_customer()
    headers = customer_headers(customer)
    assert (await client.get("/app/points", headers=headers)).status_code == 200
    assert headers["Authorization"].removeprefix("Bearer ") in tokens._VERIFIED
    clock.set_now(clock.now() + timedelta(days=400))
    expired = await client.get("/app/points", headers=headers)
    assert expired.status_code == 401 and expired.json()["code"] == "token_expired"


async def test_a_token_differing_in_one_character_of_its_signature_is_verified_afresh(client):
    customer = await make_customer()
    token, _ = issue_customer_token(customer.id)
    assert (await client.get("/app/points", headers={"Authorization": f"Bearer {token}"})).status_code == 200
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{('A' if signature[0] != 'A' else 'B') + signature[1:]}"
    refused = await client.get("/app/points", headers={"Authorization": f"Bearer {forged}"})
    assert refused.status_code == 401 and refused.json()["code"] == "token_invalid"


async def test_a_remembered_token_is_verified_again_under_another_key(client, monkeypatch):
    customer = await make_customer()
    token, _ = issue_customer_token(customer.id)
    assert (await client.get("/app/points", headers={"Authorization": f"Bearer {token}"})).status_code == 200
    settings = tokens.get_settings()
    rotated = msgspec.structs.replace(
        settings, app=msgspec.structs.replace(settings.app, secret_key="another-key-" + "x" * 40))
    monkeypatch.setattr(tokens, "get_settings", lambda: rotated)
    refused = await client.get("/app/points", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 401 and refused.json()["code"] == "token_invalid"


# Each route that leaves the erasure check to its work, with the test that proves its work refuses an
# erased customer and writes nothing. A new one needs its own such test before it joins this list.
CHECKED_BY_WORK = {
    ("POST", "/app/check-ins"): "tests/api/test_guard_shortcuts.py::test_check_in_of_an_erased_customer_is_refused_and_writes_nothing",
    ("POST", "/app/mall/redemptions"): "tests/points_mall/test_redemption_batches.py::test_an_erased_customer_inside_a_batch_is_refused_alone",
    ("POST", "/app/groups/{group_id:int}/join"): "tests/campaigns/test_join_statements.py::test_an_erased_customer_cannot_join_and_nothing_is_held",
    ("POST", "/app/bookings"): "tests/booking/test_booking_statements.py::test_an_erased_customer_cannot_book_and_no_seat_is_taken",
    ("GET", "/app/points"): "tests/api/test_guard_shortcuts.py::test_the_overview_and_the_shelf_refuse_an_erased_customer_at_once",
    ("GET", "/app/mall/items"): "tests/api/test_guard_shortcuts.py::test_the_overview_and_the_shelf_refuse_an_erased_customer_at_once",
}


def test_the_routes_that_leave_the_erasure_check_to_their_work_are_the_proven_ones(app):
    from api.security import ERASURE_CHECKED_BY_WORK

    marked = set()
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if handler.opt.get(ERASURE_CHECKED_BY_WORK):
                marked |= {(method, route.path) for method in handler.http_methods}
    assert marked == set(CHECKED_BY_WORK)


async def test_customers_new_to_the_read_memo_at_once_are_read_together(client, seen_active_clock):
    """The guard's reads of customers it has not seen lately, asked in the same moment, share one statement
    (kernel.identity.service._ACTIVE_TOGETHER); each customer is still admitted or refused on their own row."""
    import asyncio

    from kernel.identity import service

    customers = [await make_customer() for _ in range(8)]
    erased = await make_customer()
    await _erase_row(erased)
    crowd = [*customers[:4], erased, *customers[4:], customers[0]]
    calls = service._ACTIVE_TOGETHER.calls
    answers = await asyncio.gather(*[client.get("/app/points/ledger", headers=customer_headers(c)) for c in crowd])
    assert 1 <= service._ACTIVE_TOGETHER.calls - calls < len(crowd) / 2
    assert [a.status_code for a in answers] == [200] * 4 + [401] + [200] * 5
    assert answers[4].json()["code"] == "account_erased"
    assert set(SEEN_ACTIVE._until) == {c.id for c in customers}  # the erased one is not remembered
