"""Slot generation: wall-clock hours in the branch's zone, stored in UTC, correct across midnight
(both UTC midnight and local midnight), with closed days, extra hours and idempotent publishing."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from booking.models import ExceptionKind, Slot
from booking.schedules import Window, local_day_bounds, plan_slots, window_of
from booking import service
from kernel import clock
from kernel.db import transaction
from tests.booking.factories import make_branch, make_department, make_schedule
from tests.factories import customer_headers, make_customer

SHANGHAI = ZoneInfo("Asia/Shanghai")
MONDAY = date(2030, 3, 4)
UTC = timezone.utc


def _plan(windows: dict[int, list[Window]], *, zone=SHANGHAI, days=None, closed=frozenset(), extra=None):
    return plan_slots(
        days=days or [MONDAY], zone=zone, slot_minutes=30, weekday_windows=windows, extra_windows=extra or {},
        closed_dates=set(closed), valid_from=date(2000, 1, 1), valid_until=None,
        not_before=datetime(2000, 1, 1, tzinfo=UTC),
    )


def test_monday_is_a_monday():
    assert MONDAY.weekday() == 0


def coming_monday() -> date:
    """A Monday 3 to 9 days ahead: near enough that tokens minted now are still valid then."""
    day = datetime.now(UTC).date() + timedelta(days=3)
    return day + timedelta(days=(7 - day.weekday()) % 7)


def iso(day: date, plus: int = 0) -> str:
    return (day + timedelta(days=plus)).isoformat()


def test_early_local_morning_falls_on_the_previous_utc_day():
    slots = _plan({0: [window_of("06:00", "09:00", "h")]})
    assert len(slots) == 6
    # 06:00 in Shanghai (UTC+8) is 22:00 UTC on Sunday; the window crosses UTC midnight.
    assert slots[0].starts_at == datetime(2030, 3, 3, 22, 0, tzinfo=UTC)
    assert slots[-1].ends_at == datetime(2030, 3, 4, 1, 0, tzinfo=UTC)
    assert {s.local_date for s in slots} == {MONDAY}


def test_evening_window_past_local_midnight_gives_next_day_slots():
    window = window_of("22:00", "02:00", "h")
    assert window == Window(22 * 60, 26 * 60)
    slots = _plan({0: [window]})
    assert [s.starts_at.astimezone(SHANGHAI).strftime("%a %H:%M") for s in slots] == [
        "Mon 22:00", "Mon 22:30", "Mon 23:00", "Mon 23:30", "Tue 00:00", "Tue 00:30", "Tue 01:00", "Tue 01:30",
    ]
    assert [s.local_date for s in slots] == [MONDAY] * 4 + [MONDAY + timedelta(days=1)] * 4
    assert slots[4].starts_at == datetime(2030, 3, 4, 16, 0, tzinfo=UTC)
    # A closed Tuesday removes the slots starting on Tuesday, even from Monday's window.
    closed = _plan({0: [window]}, closed={MONDAY + timedelta(days=1)})
    assert len(closed) == 4 and {s.local_date for s in closed} == {MONDAY}


def test_same_wall_hours_in_another_zone_are_other_instants():
    tokyo = _plan({0: [window_of("09:00", "10:00", "h")]}, zone=ZoneInfo("Asia/Tokyo"))
    shanghai = _plan({0: [window_of("09:00", "10:00", "h")]})
    assert shanghai[0].starts_at - tokyo[0].starts_at == timedelta(hours=1)
    start, end = local_day_bounds(MONDAY, SHANGHAI)
    assert start == datetime(2030, 3, 3, 16, tzinfo=UTC) and end - start == timedelta(hours=24)


def test_extra_hours_overlapping_the_week_do_not_duplicate():
    slots = _plan({0: [window_of("09:00", "10:00", "h")]}, extra={MONDAY: [window_of("09:30", "11:00", "h")]})
    assert [s.starts_at.astimezone(SHANGHAI).strftime("%H:%M") for s in slots] == [
        "09:00", "09:30", "10:00", "10:30"
    ]


async def test_publish_is_idempotent_and_listing_uses_the_branch_day(client):
    monday = coming_monday()
    headers = customer_headers(await make_customer())  # minted on the real clock
    clock.set_now(datetime.combine(monday - timedelta(days=3), datetime.min.time(), tzinfo=UTC))
    branch, department = await make_branch(), await make_department()
    schedule = await make_schedule(branch, department, capacity=2, hours=[(0, "06:00", "07:00"), (0, "23:00", "01:00")])
    async with transaction() as conn:
        created = await service.publish_slots(conn, schedule.id, from_date=monday, days=2)
        again = await service.publish_slots(conn, schedule.id, from_date=monday, days=2)
    assert (created, again) == (6, 0)
    assert await Slot.filter(schedule_id=schedule.id).count() == 6

    params = {"branch_id": branch.id, "department_id": department.id}
    tuesday = await client.get("/app/booking/slots", params={**params, "date": iso(monday, 1)}, headers=headers)
    assert tuesday.status_code == 200, tuesday.text
    body = tuesday.json()
    assert body["timezone"] == "Asia/Shanghai"
    assert [s["local_start"] for s in body["items"]] == [f"{iso(monday, 1)}T00:00:00+08:00", f"{iso(monday, 1)}T00:30:00+08:00"]
    assert body["items"][0]["starts_at"].startswith(f"{iso(monday)}T16:00:00")
    assert body["items"][0]["remaining"] == 2
    on_monday = await client.get("/app/booking/slots", params={**params, "date": iso(monday)}, headers=headers)
    assert [s["local_start"][11:16] for s in on_monday.json()["items"]] == ["06:00", "06:30", "23:00", "23:30"]
    assert on_monday.json()["items"][0]["starts_at"].startswith(f"{iso(monday, -1)}T22:00:00")


async def test_branch_zone_decides_the_day(client):
    monday = coming_monday()
    headers = customer_headers(await make_customer())
    clock.set_now(datetime.combine(monday - timedelta(days=3), datetime.min.time(), tzinfo=UTC))
    tokyo = await make_branch(timezone="Asia/Tokyo")
    department = await make_department()
    schedule = await make_schedule(tokyo, department, hours=[(0, "08:00", "08:30")])
    async with transaction() as conn:
        assert await service.publish_slots(conn, schedule.id, from_date=monday, days=1) == 1
    slot = await Slot.get(schedule_id=schedule.id)
    assert slot.starts_at == datetime.combine(monday - timedelta(days=1), datetime.min.time(), tzinfo=UTC) + timedelta(hours=23) and slot.local_date == monday
    listed = await client.get("/app/booking/slots", headers=headers,
                              params={"branch_id": tokyo.id, "department_id": department.id, "date": iso(monday)})
    assert listed.json()["items"][0]["local_start"] == f"{iso(monday)}T08:00:00+09:00"


async def test_exceptions_close_days_and_add_hours(client):
    monday = coming_monday()
    headers = customer_headers(await make_customer())
    clock.set_now(datetime.combine(monday - timedelta(days=3), datetime.min.time(), tzinfo=UTC))
    branch, department = await make_branch(), await make_department()
    schedule = await make_schedule(branch, department, capacity=1,
                                   hours=[(d, "09:00", "10:00") for d in range(7)])
    async with transaction() as conn:
        await service.add_exception(conn, schedule.id, day=monday, kind=ExceptionKind.closed)
        await service.add_exception(conn, schedule.id, day=monday + timedelta(days=1), kind=ExceptionKind.extra,
                                    start="18:00", end="19:00")
        assert await service.publish_slots(conn, schedule.id, from_date=monday, days=3) == 0 + 4 + 2
    by_day = {}
    for slot in await Slot.filter(schedule_id=schedule.id):
        by_day.setdefault(slot.local_date, []).append(slot)
    assert monday not in by_day and len(by_day[monday + timedelta(days=1)]) == 4

    # Closing Wednesday after publication closes all its slots and reports the seat already booked.
    wednesday = monday + timedelta(days=2)
    booked_slot = sorted(by_day[wednesday], key=lambda s: s.starts_at)[0]
    r = await client.post("/app/bookings", json={"slot_id": booked_slot.id}, headers=headers)
    assert r.status_code == 201, r.text
    async with transaction() as conn:
        _, still_booked = await service.add_exception(conn, schedule.id, day=wednesday, kind=ExceptionKind.closed)
    assert still_booked == 1
    statuses = {s.id: s.status for s in await Slot.filter(schedule_id=schedule.id, local_date=wednesday)}
    # The whole day is closed to new bookings; the booking already made keeps its seat.
    assert set(statuses.values()) == {"closed"} and len(statuses) == 2
    assert (await Slot.get(id=booked_slot.id)).booked == 1


async def test_no_slots_in_the_past(client):
    # Monday 09:40 in Shanghai: the 09:00 and 09:30 slots of that morning are not published.
    clock.set_now(datetime(2030, 3, 4, 9, 40, tzinfo=SHANGHAI))
    branch, department = await make_branch(), await make_department()
    schedule = await make_schedule(branch, department, hours=[(0, "09:00", "11:00")])
    async with transaction() as conn:
        assert await service.publish_slots(conn, schedule.id, from_date=MONDAY, days=1) == 2
