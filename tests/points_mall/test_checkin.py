"""Daily check-in: one per clinic-local day under 50 concurrent taps, streaks, cycle wrap, reset, make-up limits."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta, timezone

import pytest

from kernel import clock
from kernel.db import transaction
from points_mall.models import CheckIn, PointsLedgerEntry
from points_mall.rules import get_rules, update_rules
from tests.factories import customer_headers, make_customer
from tests.points_mall.factories import assert_ledger_consistent

SHANGHAI = timezone(timedelta(hours=8))


def at_local(day: date, hour: int = 9) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=SHANGHAI)


@pytest.fixture
async def checkin_rules():
    """A known reward table for these tests (5 a day, a 7-day cycle, +10 on day 3, +30 on day 7)."""
    async with transaction() as conn:
        before = await get_rules(conn)
        saved = {f: getattr(before, f) for f in ("checkin_base_points", "checkin_cycle_days", "checkin_bonus",
                                                   "makeup_enabled", "makeup_cost_points", "makeup_per_month")}
        await update_rules(conn, None, {"checkin_base_points": 5, "checkin_cycle_days": 7,
                                        "checkin_bonus": {"3": 10, "7": 30}, "makeup_enabled": False,
                                        "makeup_cost_points": 20, "makeup_per_month": 2})
    yield
    async with transaction() as conn:
        await update_rules(conn, None, saved)


async def tap(client, customer):
    return await client.post("/app/check-ins", headers=customer_headers(customer))


async def test_fifty_concurrent_taps_give_one_entry(client, checkin_rules):
    customer = await make_customer()
    responses = await asyncio.gather(*[tap(client, customer) for _ in range(50)])
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 1 and statuses.count(409) == 49, statuses
    assert all(r.json()["code"] == "already_checked_in" for r in responses if r.status_code == 409)
    assert await CheckIn.filter(customer_id=customer.id).count() == 1
    entries = await PointsLedgerEntry.filter(customer_id=customer.id)
    assert len(entries) == 1 and entries[0].delta == 5
    assert await assert_ledger_consistent(customer.id) == 5


async def test_local_day_is_shanghai_not_utc(client, checkin_rules):
    customer = await make_customer()
    # 23:30 UTC on 1 March is 07:30 on 2 March in Shanghai; 15:59 UTC on 2 March is still 2 March there.
    clock.set_now(datetime(2026, 3, 1, 23, 30, tzinfo=timezone.utc))
    assert (await tap(client, customer)).json()["date"] == "2026-03-02"
    clock.set_now(datetime(2026, 3, 2, 15, 59, tzinfo=timezone.utc))
    assert (await tap(client, customer)).status_code == 409
    clock.set_now(datetime(2026, 3, 2, 16, 1, tzinfo=timezone.utc))
    assert (await tap(client, customer)).json()["date"] == "2026-03-03"


async def test_streak_cycle_wrap_and_reset(client, checkin_rules):
    customer = await make_customer()
    start = date(2026, 5, 1)
    earned = []
    for n in range(9):
        clock.set_now(at_local(start + timedelta(days=n)))
        body = (await tap(client, customer)).json()
        earned.append((body["streak"], body["day_in_cycle"], body["points"]))
    assert earned == [(1, 1, 5), (2, 2, 5), (3, 3, 15), (4, 4, 5), (5, 5, 5), (6, 6, 5), (7, 7, 35),
                      (8, 1, 5), (9, 2, 5)]
    # Missing 10 May resets the streak on 11 May.
    clock.set_now(at_local(date(2026, 5, 11)))
    body = (await tap(client, customer)).json()
    assert (body["streak"], body["day_in_cycle"], body["points"], body["tomorrow_points"]) == (1, 1, 5, 5)
    calendar = (await client.get("/app/check-ins", params={"month": "2026-05"},
                                 headers=customer_headers(customer))).json()
    assert [d["date"] for d in calendar["days"]][-2:] == ["2026-05-09", "2026-05-11"]
    assert calendar["streak"] == 1 and calendar["checked_in_today"] is True
    assert await assert_ledger_consistent(customer.id) == sum(p for _, _, p in earned) + 5


async def test_makeup_is_off_by_default_then_limited(client, checkin_rules):
    customer = await make_customer()
    headers = customer_headers(customer)
    clock.set_now(at_local(date(2026, 6, 1)))
    await tap(client, customer)
    clock.set_now(at_local(date(2026, 6, 3)))
    await tap(client, customer)  # missed 2 June: streak 1
    off = await client.post("/app/check-ins/makeup", json={"date": "2026-06-02"}, headers=headers)
    assert off.status_code == 409 and off.json()["code"] == "makeup_not_allowed"

    async with transaction() as conn:
        await update_rules(conn, None, {"makeup_enabled": True, "makeup_cost_points": 4, "makeup_per_month": 1})
    made = await client.post("/app/check-ins/makeup", json={"date": "2026-06-02"}, headers=headers)
    assert made.status_code == 201, made.text
    assert made.json() == {"date": "2026-06-02", "points": 0, "streak": 2, "makeup": True}
    # The streak after the made-up day continues: today is now day 3.
    calendar = (await client.get("/app/check-ins", headers=headers)).json()
    assert calendar["streak"] == 3 and calendar["makeup_left_this_month"] == 0
    # Balance: 5 + 5 earned, 4 paid.
    assert await assert_ledger_consistent(customer.id) == 6

    clock.set_now(at_local(date(2026, 6, 6)))  # missed 4 and 5 June
    limited = await client.post("/app/check-ins/makeup", json={"date": "2026-06-05"}, headers=headers)
    assert limited.status_code == 409 and limited.json()["code"] == "makeup_limit_reached"
    outside = await client.post("/app/check-ins/makeup", json={"date": "2026-05-20"}, headers=headers)
    assert outside.status_code == 409 and outside.json()["detail"]["reason"] == "outside_cycle"
    # A new month gives the allowance back.
    clock.set_now(at_local(date(2026, 7, 2)))
    await tap(client, customer)
    again = await client.post("/app/check-ins/makeup", json={"date": "2026-07-01"}, headers=headers)
    assert again.status_code == 201
    assert await assert_ledger_consistent(customer.id) == 6 + 5 - 4


async def test_concurrent_makeups_respect_the_monthly_limit(client, checkin_rules):
    customer = await make_customer()
    headers = customer_headers(customer)
    async with transaction() as conn:
        await update_rules(conn, None, {"makeup_enabled": True, "makeup_cost_points": 0, "makeup_per_month": 2})
    clock.set_now(at_local(date(2026, 8, 8)))
    days = [f"2026-08-0{d}" for d in range(2, 8)]
    responses = await asyncio.gather(*[
        client.post("/app/check-ins/makeup", json={"date": d}, headers=headers) for d in days
    ])
    assert sorted(r.status_code for r in responses) == [201, 201, 409, 409, 409, 409]
    assert await CheckIn.filter(customer_id=customer.id, makeup=True).count() == 2


async def test_many_customers_checking_in_at_once_all_succeed(client, checkin_rules):
    customers = [await make_customer() for _ in range(100)]
    responses = await asyncio.gather(*[tap(client, c) for c in customers])
    assert [r.status_code for r in responses] == [201] * 100, [r.text for r in responses if r.status_code != 201][:3]
    for c in customers[:5]:
        await assert_ledger_consistent(c.id)
