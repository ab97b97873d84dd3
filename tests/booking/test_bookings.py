"""Seats under contention: capacity is never exceeded, reschedules never leave zero or two seats,
a cancellation returns its seat once; notice and cancel windows follow the (injected) clock."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from booking.models import Booking, BookingStatus, Slot
from booking.settings import override
from kernel import clock
from tests.booking.factories import make_branch, make_department, make_service, make_slot, slot_seats
from tests.factories import customer_headers, make_customer, make_staff, staff_headers


async def test_100_concurrent_bookings_for_3_seats_give_exactly_3(client):
    slot = await make_slot(capacity=3)
    customers = [await make_customer() for _ in range(100)]
    responses = await asyncio.gather(
        *[client.post("/app/bookings", json={"slot_id": slot.id}, headers=customer_headers(c)) for c in customers]
    )
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == 3, [r.text for r in responses if r.status_code not in (201, 409)]
    assert statuses.count(409) == 97
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"slot_full"}
    assert await slot_seats(slot.id) == (3, 3)
    assert await Booking.filter(slot_id=slot.id).count() == 3


async def test_one_customer_hammering_gets_one_seat(client):
    slot = await make_slot(capacity=50)
    customer = await make_customer()
    responses = await asyncio.gather(
        *[client.post("/app/bookings", json={"slot_id": slot.id}, headers=customer_headers(customer))
          for _ in range(20)]
    )
    assert [r.status_code for r in responses].count(201) == 1
    assert {r.json()["code"] for r in responses if r.status_code != 201} == {"already_booked"}
    assert await slot_seats(slot.id) == (1, 1)


async def test_reschedule_under_contention_never_zero_or_two_seats(client):
    branch, department = await make_branch(), await make_department()
    home = await make_slot(branch=branch, department=department, capacity=6, starts_in=timedelta(days=3))
    # Three one-seat targets that many others want at the same moment.
    targets = [
        await make_slot(branch=branch, department=department, capacity=1, starts_in=timedelta(days=4, hours=i))
        for i in range(3)
    ]
    movers = [await make_customer() for _ in range(6)]
    bookings = {}
    for mover in movers:
        r = await client.post("/app/bookings", json={"slot_id": home.id}, headers=customer_headers(mover))
        assert r.status_code == 201, r.text
        bookings[mover.id] = r.json()["id"]
    rivals = [await make_customer() for _ in range(12)]
    requests = []
    for mover in movers:
        for target in targets:  # each mover races to all three targets at once
            requests.append(client.post(
                f"/app/bookings/{bookings[mover.id]}/reschedule", json={"slot_id": target.id},
                headers=customer_headers(mover),
            ))
    for i, rival in enumerate(rivals):
        requests.append(client.post("/app/bookings", json={"slot_id": targets[i % 3].id},
                                    headers=customer_headers(rival)))
    responses = await asyncio.gather(*requests)
    assert all(r.status_code in (200, 201, 409) for r in responses), [r.text for r in responses]

    for mover in movers:
        held = await Booking.filter(customer_id=mover.id).exclude(status=BookingStatus.cancelled)
        assert len(held) == 1, f"customer {mover.id} holds {len(held)} seats"
        assert held[0].slot_id in {home.id, *[t.id for t in targets]}
    for slot in [home, *targets]:
        booked, holding = await slot_seats(slot.id)
        assert booked == holding and booked <= slot.capacity
    # Someone won each one-seat target, and home lost exactly as many seats as movers moved.
    moved = await Booking.filter(customer_id__in=[m.id for m in movers]).exclude(slot_id=home.id).count()
    assert (await Slot.get(id=home.id)).booked == 6 - moved
    assert [(await Slot.get(id=t.id)).booked for t in targets] == [1, 1, 1]


async def test_reschedule_moves_the_seat_and_refuses_a_full_target(client):
    branch, department = await make_branch(), await make_department()
    first = await make_slot(branch=branch, department=department, capacity=2)
    second = await make_slot(branch=branch, department=department, capacity=1, starts_in=timedelta(days=5))
    customer, rival = await make_customer(), await make_customer()
    booking = (await client.post("/app/bookings", json={"slot_id": first.id}, headers=customer_headers(customer))).json()
    moved = await client.post(f"/app/bookings/{booking['id']}/reschedule", json={"slot_id": second.id},
                              headers=customer_headers(customer))
    assert moved.status_code == 200, moved.text
    assert moved.json()["slot_id"] == second.id and moved.json()["reschedule_count"] == 1
    assert await slot_seats(first.id) == (0, 0) and await slot_seats(second.id) == (1, 1)

    theirs = (await client.post("/app/bookings", json={"slot_id": first.id}, headers=customer_headers(rival))).json()
    full = await client.post(f"/app/bookings/{theirs['id']}/reschedule", json={"slot_id": second.id},
                             headers=customer_headers(rival))
    assert full.status_code == 409 and full.json()["code"] == "slot_full"
    # The refused move left the rival exactly where they were.
    assert (await Booking.get(id=theirs["id"])).slot_id == first.id
    assert await slot_seats(first.id) == (1, 1) and await slot_seats(second.id) == (1, 1)

    other_department = await make_slot(branch=branch, capacity=1)
    wrong = await client.post(f"/app/bookings/{theirs['id']}/reschedule", json={"slot_id": other_department.id},
                              headers=customer_headers(rival))
    assert wrong.status_code == 422 and wrong.json()["detail"]["field"] == "slot_id"


async def test_cancellation_returns_the_seat_once(client):
    slot = await make_slot(capacity=2)
    customer, other = await make_customer(), await make_customer()
    booking = (await client.post("/app/bookings", json={"slot_id": slot.id}, headers=customer_headers(customer))).json()
    await client.post("/app/bookings", json={"slot_id": slot.id}, headers=customer_headers(other))
    assert await slot_seats(slot.id) == (2, 2)
    responses = await asyncio.gather(
        *[client.post(f"/app/bookings/{booking['id']}/cancel", headers=customer_headers(customer)) for _ in range(15)]
    )
    assert [r.status_code for r in responses].count(200) == 1
    assert {r.json()["code"] for r in responses if r.status_code != 200} == {"illegal_transition"}
    assert await slot_seats(slot.id) == (1, 1)
    # The seat is free again for someone else, exactly one.
    late = [await make_customer() for _ in range(5)]
    retries = await asyncio.gather(
        *[client.post("/app/bookings", json={"slot_id": slot.id}, headers=customer_headers(c)) for c in late]
    )
    assert [r.status_code for r in retries].count(201) == 1
    assert await slot_seats(slot.id) == (2, 2)


async def test_another_customers_booking_is_not_found(client):
    slot = await make_slot()
    owner, intruder = await make_customer(), await make_customer()
    booking = (await client.post("/app/bookings", json={"slot_id": slot.id}, headers=customer_headers(owner))).json()
    for method, path in [("GET", ""), ("POST", "/cancel"), ("POST", "/survey")]:
        r = await client.request(method, f"/app/bookings/{booking['id']}{path}", headers=customer_headers(intruder),
                                 json={"score": 5} if path == "/survey" else None)
        assert r.status_code == 404, (path, r.text)
    r = await client.post(f"/app/bookings/{booking['id']}/reschedule", json={"slot_id": slot.id},
                          headers=customer_headers(intruder))
    assert r.status_code == 404
    listed = await client.get("/app/bookings", headers=customer_headers(intruder))
    assert listed.json()["total"] == 0
    assert (await Booking.get(id=booking["id"])).status == BookingStatus.booked


async def test_minimum_notice_with_injected_time(client):
    slot = await make_slot(starts_in=timedelta(days=1))
    customer = await make_customer()
    # Tokens are minted on the real clock (the JWT library refuses one issued in the future).
    headers, late_headers = customer_headers(customer), customer_headers(await make_customer())
    with override(min_notice_minutes=120):
        # Three hours before the start: bookable.  One hour before: too late, and not offered.
        clock.set_now(slot.starts_at - timedelta(hours=1))
        late = await client.post("/app/bookings", json={"slot_id": slot.id}, headers=headers)
        assert late.status_code == 409 and late.json()["code"] == "too_late"
        listed = await client.get("/app/booking/slots", headers=headers, params={
            "branch_id": slot.branch_id, "department_id": slot.department_id, "date": slot.local_date.isoformat()})
        assert slot.id not in [s["id"] for s in listed.json()["items"]]

        clock.set_now(slot.starts_at - timedelta(hours=2, seconds=1))
        listed = await client.get("/app/booking/slots", headers=headers, params={
            "branch_id": slot.branch_id, "department_id": slot.department_id, "date": slot.local_date.isoformat()})
        assert [s["id"] for s in listed.json()["items"]] == [slot.id]
        ok = await client.post("/app/bookings", json={"slot_id": slot.id}, headers=headers)
        assert ok.status_code == 201, ok.text
    # A slot in the past is never bookable.
    clock.set_now(slot.starts_at + timedelta(minutes=1))
    past = await client.post("/app/bookings", json={"slot_id": slot.id}, headers=late_headers)
    assert past.status_code == 409 and past.json()["code"] == "too_late"


async def test_cancel_and_reschedule_window_with_injected_time(client):
    branch, department = await make_branch(), await make_department()
    slot = await make_slot(branch=branch, department=department, starts_in=timedelta(days=3))
    later = await make_slot(branch=branch, department=department, starts_in=timedelta(days=6))
    customer = await make_customer()
    headers = customer_headers(customer)
    with override(cancel_window_hours=24):
        booking = (await client.post("/app/bookings", json={"slot_id": slot.id}, headers=headers)).json()
        clock.set_now(slot.starts_at - timedelta(hours=23))
        refused = await client.post(f"/app/bookings/{booking['id']}/cancel", headers=headers)
        assert refused.status_code == 409 and refused.json()["code"] == "change_window_closed"
        moved = await client.post(f"/app/bookings/{booking['id']}/reschedule", json={"slot_id": later.id},
                                  headers=headers)
        assert moved.status_code == 409 and moved.json()["code"] == "change_window_closed"
        assert await slot_seats(slot.id) == (1, 1)

        clock.set_now(slot.starts_at - timedelta(hours=25))
        ok = await client.post(f"/app/bookings/{booking['id']}/cancel", headers=headers)
        assert ok.status_code == 200 and ok.json()["status"] == "cancelled"
        assert await slot_seats(slot.id) == (0, 0)


async def test_overlap_and_active_limit(client):
    branch, department = await make_branch(), await make_department()
    base = clock.now() + timedelta(days=3)
    first = await make_slot(branch=branch, department=department, starts_at=base, minutes=60)
    overlapping = await make_slot(branch=branch, starts_at=base + timedelta(minutes=30))
    customer = await make_customer()
    headers = customer_headers(customer)
    assert (await client.post("/app/bookings", json={"slot_id": first.id}, headers=headers)).status_code == 201
    clash = await client.post("/app/bookings", json={"slot_id": overlapping.id}, headers=headers)
    assert clash.status_code == 409 and clash.json()["code"] == "already_booked"
    assert clash.json()["detail"]["reason"] == "overlap"
    with override(max_active_bookings=2):
        second = await make_slot(starts_in=timedelta(days=4))
        third = await make_slot(starts_in=timedelta(days=5))
        assert (await client.post("/app/bookings", json={"slot_id": second.id}, headers=headers)).status_code == 201
        limit = await client.post("/app/bookings", json={"slot_id": third.id}, headers=headers)
        assert limit.status_code == 409 and limit.json()["detail"]["reason"] == "limit"


async def test_service_rules_and_closed_slot(client):
    department = await make_department()
    slot = await make_slot(department=department)
    customer = await make_customer()
    headers = customer_headers(customer)
    elsewhere = await make_service(await make_department())
    wrong = await client.post("/app/bookings", json={"slot_id": slot.id, "service_id": elsewhere.id}, headers=headers)
    assert wrong.status_code == 422 and wrong.json()["detail"]["field"] == "service_id"
    thermage = await make_service(department, requires_consultation=True)
    refused = await client.post("/app/bookings", json={"slot_id": slot.id, "service_id": thermage.id}, headers=headers)
    assert refused.status_code == 409 and refused.json()["code"] == "consultation_required"
    missing = await client.post("/app/bookings", json={"slot_id": 999999999}, headers=headers)
    assert missing.status_code == 404 and missing.json()["code"] == "slot_not_found"
    await Slot.filter(id=slot.id).update(status="closed")
    closed = await client.post("/app/bookings", json={"slot_id": slot.id}, headers=headers)
    assert closed.status_code == 409 and closed.json()["code"] == "slot_closed"
    assert await slot_seats(slot.id) == (0, 0)


async def test_shrinking_or_closing_a_slot_while_customers_book_never_strands_a_seat(client):
    desk = staff_headers(await make_staff("front_desk"))
    branch, department = await make_branch(), await make_department()
    shrinking = await make_slot(branch=branch, department=department, capacity=10)
    closing = await make_slot(branch=branch, department=department, capacity=10, starts_in=timedelta(days=6))
    customers = [await make_customer() for _ in range(16)]
    requests = [
        client.post("/app/bookings", json={"slot_id": (shrinking if i % 2 else closing).id},
                    headers=customer_headers(c))
        for i, c in enumerate(customers)
    ]
    # Staff shrink one slot to 4 seats and close the other's day (a holiday) in the middle of the rush.
    requests.insert(5, client.patch(f"/admin/slots/{shrinking.id}", headers=desk, json={"capacity": 4}))
    requests.insert(9, client.post(f"/admin/schedules/{closing.schedule_id}/exceptions", headers=desk,
                                   json={"date": closing.local_date.isoformat(), "kind": "closed"}))
    responses = await asyncio.gather(*requests)
    assert all(r.status_code in (200, 201, 409) for r in responses), [r.text for r in responses]
    codes = {r.json()["code"] for r in responses if r.status_code == 409}
    assert codes <= {"slot_full", "slot_closed", "capacity_below_booked"}, codes

    # Whoever won each race, the counter equals the bookings and never exceeds the capacity.
    for slot_id in (shrinking.id, closing.id):
        slot = await Slot.get(id=slot_id)
        booked, holding = await slot_seats(slot_id)
        assert booked == holding <= slot.capacity
    shrunk = await Slot.get(id=shrinking.id)
    assert shrunk.capacity == 4 or shrunk.booked > 4
    # The holiday is closed to new bookings whoever won the race; the bookings made before keep their seats.
    closed = await Slot.get(id=closing.id)
    assert closed.status == "closed"
