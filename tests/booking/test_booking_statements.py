"""The booking's batched statements (MySQL/MariaDB) answer what the ORM path answers: the customer lock with
the slot read, and the seat with the insert, whose booking is the row the database holds and is written only
when the seat was taken."""

from __future__ import annotations

from datetime import timedelta

import pytest

from booking import bookings
from booking.errors import SlotFull
from booking.models import Booking, BookingStatus, Slot
from kernel import clock
from kernel.db import transaction
from tests.booking.factories import make_branch, make_department, make_slot
from tests.factories import customer_headers, make_customer


async def test_the_batched_read_matches_the_general_path(client):
    branch, department = await make_branch(timezone="Asia/Shanghai"), await make_department()
    base = clock.now() + timedelta(days=2)
    wanted = await make_slot(branch=branch, department=department, starts_at=base)
    overlapping_held = await make_slot(branch=branch, department=department, starts_at=base + timedelta(minutes=15))
    apart = await make_slot(branch=branch, department=department, starts_at=base + timedelta(hours=3))
    past = await make_slot(branch=branch, department=department, starts_at=base + timedelta(hours=5))

    fresh = await make_customer()
    clashing = await make_customer()
    r = await client.post("/app/bookings", json={"slot_id": overlapping_held.id}, headers=customer_headers(clashing))
    assert r.status_code == 201, r.text
    busy = await make_customer()  # two upcoming bookings apart from the wanted slot, one cancelled, one in the past
    for slot in (apart, past):
        r = await client.post("/app/bookings", json={"slot_id": slot.id}, headers=customer_headers(busy))
        assert r.status_code == 201, r.text
    await Booking.filter(customer_id=busy.id, slot_id=past.id).update(starts_at=clock.now() - timedelta(hours=1),
                                                                       ends_at=clock.now() - timedelta(minutes=30))
    cancelled = await make_customer()
    r = await client.post("/app/bookings", json={"slot_id": overlapping_held.id}, headers=customer_headers(cancelled))
    await Booking.filter(id=r.json()["id"]).update(status=BookingStatus.cancelled)

    seen = {}
    async with transaction() as conn:
        assert conn.capabilities.dialect == "mysql"  # the suite runs on MariaDB: the fast path is under test
        for customer in (fresh, clashing, busy, cancelled):
            fast_slot, fast_clash, fast_held = await bookings._locked_customer_slot_and_holdings(
                conn, customer.id, wanted.id)
            slot, clash, held = await bookings.slot_and_holdings_general(conn, customer.id, wanted.id)
            assert (fast_clash, fast_held) == (clash, held), customer.id
            for field in Slot._meta.db_fields:  # the same values of the same types (read from one JSON column)
                assert getattr(fast_slot, field) == getattr(slot, field), field
                assert type(getattr(fast_slot, field)) is type(getattr(slot, field)), field
            seen[customer.id] = (clash, held)
    # The states are the ones meant, so the comparison covers each answer.
    assert seen[fresh.id] == (None, 0)
    assert seen[clashing.id][0] is not None
    assert seen[busy.id] == (None, 1)
    assert seen[cancelled.id] == (None, 0)


async def test_the_booking_answered_is_the_row_stored(client):
    slot = await make_slot(capacity=2)
    customer = await make_customer()
    async with transaction() as conn:
        built = await bookings.book(conn, customer_id=customer.id, slot_id=slot.id, note="first visit", remind=False)
    stored = await Booking.get(id=built.id)
    for field in Booking._meta.db_fields:
        assert getattr(built, field) == getattr(stored, field), field
    assert built.status == BookingStatus.booked and built.starts_at.utcoffset() == timedelta(0)


async def test_an_erased_customer_cannot_book_and_no_seat_is_taken(client):
    from kernel.identity.models import Customer

    slot = await make_slot(capacity=2)
    customer = await make_customer()
    await Customer.filter(id=customer.id).update(deleted_at=clock.now())
    refused = await client.post("/app/bookings", json={"slot_id": slot.id}, headers=customer_headers(customer))
    assert refused.status_code == 401 and refused.json()["code"] == "account_erased"
    assert not await Booking.filter(customer_id=customer.id).exists()
    assert (await Slot.get(id=slot.id)).booked == 0


async def test_a_seat_refused_in_its_batch_writes_no_booking(client):
    slot = await make_slot(capacity=1)
    first, second = await make_customer(), await make_customer()
    taken = await client.post("/app/bookings", json={"slot_id": slot.id}, headers=customer_headers(first))
    assert taken.status_code == 201
    refused = await client.post("/app/bookings", json={"slot_id": slot.id}, headers=customer_headers(second))
    assert refused.status_code == 409 and refused.json()["code"] == "slot_full"
    async with transaction() as conn:
        # Inside the transaction, before its rollback: the conditional insert wrote nothing.
        with pytest.raises(SlotFull):
            await bookings._take_seat_and_insert(conn, slot.id, dict(
                customer_id=second.id, slot_id=slot.id, branch_id=slot.branch_id, department_id=slot.department_id,
                starts_at=slot.starts_at, ends_at=slot.ends_at, local_date=slot.local_date, created_at=clock.now()))
        assert not await Booking.filter(customer_id=second.id).using_db(conn).exists()
    assert (await Slot.get(id=slot.id)).booked == 1
