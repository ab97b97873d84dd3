"""The shared answer cache (kernel.cache): what is the same for everyone is cached for a stated time,
while time-dependent filtering stays exact and a customer's own state never comes from it."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from booking import schedules
from booking.settings import get_booking_settings
from kernel import clock
from kernel.cache import SharedAnswerCache
from tests.booking.factories import make_branch, make_department, make_slot
from tests.factories import customer_headers, make_customer


@pytest.fixture
def caches_on(monkeypatch):
    """The suite runs with PUBLIC_CACHE_SECONDS=0; these tests switch the slot caches on (60 s, so the
    entry cannot expire by itself during the test)."""
    for cache in (schedules._BRANCHES, schedules._DEPARTMENTS, schedules._DAYS):
        monkeypatch.setattr(cache, "seconds", 60)
        cache.clear()
    yield
    for cache in (schedules._BRANCHES, schedules._DEPARTMENTS, schedules._DAYS):
        cache.clear()


async def test_minimum_notice_is_exact_on_a_cached_listing(client, caches_on):
    branch, department = await make_branch(), await make_department()
    notice = timedelta(minutes=get_booking_settings().min_notice_minutes)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    slot = await make_slot(branch=branch, department=department, starts_at=now + notice + timedelta(minutes=10))
    customer = await make_customer()
    params = {"branch_id": branch.id, "department_id": department.id, "date": slot.local_date.isoformat()}

    async def listed() -> list[int]:
        response = await client.get("/app/booking/slots", headers=customer_headers(customer), params=params)
        assert response.status_code == 200
        return [s["id"] for s in response.json()["items"]]

    clock.set_now(now)
    assert slot.id in await listed()
    # Eleven minutes later the cached day is still fresh, but the slot is inside the minimum notice.
    clock.set_now(now + timedelta(minutes=11))
    assert slot.id not in await listed()
    # The cache really answered: a slot added meanwhile is not listed until the entry expires.
    late = await make_slot(branch=branch, department=department, starts_at=now + notice + timedelta(hours=3))
    if late.local_date == slot.local_date:
        assert late.id not in await listed()
        schedules._DAYS.clear()
        assert late.id in await listed()


async def test_errors_are_not_cached_and_concurrent_misses_load_once():
    cache: SharedAnswerCache[int] = SharedAnswerCache("probe")
    cache.seconds = 60
    calls = 0

    async def failing() -> int:
        raise LookupError("not there yet")

    async def slow_load() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return 7

    with pytest.raises(LookupError):
        await cache.get("k", failing)
    assert await asyncio.gather(*[cache.get("k", slow_load) for _ in range(20)]) == [7] * 20
    assert calls == 1


async def test_caching_off_loads_every_time():
    cache: SharedAnswerCache[int] = SharedAnswerCache("probe")
    cache.seconds = 0
    loads = iter(range(10))

    async def load() -> int:
        return next(loads)

    assert [await cache.get("k", load) for _ in range(3)] == [0, 1, 2]


async def test_a_customers_own_state_never_comes_from_the_shared_shelf(client, monkeypatch):
    from points_mall import mall
    from tests.points_mall.factories import funded_customer, make_item

    monkeypatch.setattr(mall._SHELF, "seconds", 60)
    mall._SHELF.clear()
    try:
        item = await make_item(points_price=500)
        rich, poor = await funded_customer(1000), await funded_customer(100)

        async def reasons(customer) -> list[str]:
            response = await client.get("/app/mall/items", headers=customer_headers(customer))
            assert response.status_code == 200
            return next(i["reasons"] for i in response.json() if i["id"] == item.id)

        assert await reasons(rich) == []
        assert await reasons(poor) == ["insufficient_points"]  # same cached shelf, own balance
        # The shelf really is cached: an item added now is not listed until the entry expires.
        later = await make_item(points_price=1)
        response = await client.get("/app/mall/items", headers=customer_headers(rich))
        assert later.id not in [i["id"] for i in response.json()]
    finally:
        mall._SHELF.clear()
