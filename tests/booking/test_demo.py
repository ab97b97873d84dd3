"""The demo data loads on MariaDB, twice without duplicates, with a week of open slots from today."""

from __future__ import annotations

from datetime import timedelta

from booking import demo
from booking.models import Branch, Schedule, Slot, TriageQuestionnaire
from kernel import clock
from kernel.db import transaction


async def test_demo_loads_idempotently_with_a_week_of_slots():
    for _ in range(2):
        async with transaction() as conn:
            await demo.load(conn)
    branches = await Branch.filter(code__in=[b[0] for b in demo.BRANCHES])
    assert len(branches) == 2
    schedules = await Schedule.filter(branch_id__in=[b.id for b in branches])
    assert len(schedules) == 2 * len(demo.DEPARTMENTS)
    departments = {s.department_id for s in schedules}
    assert await TriageQuestionnaire.filter(department_id__in=departments, is_active=True).count() == 3
    today = clock.local_today()
    slots = await Slot.filter(schedule_id__in=[s.id for s in schedules])
    days = {s.local_date for s in slots}
    assert today + timedelta(days=1) in days and today + timedelta(days=6) in days
    assert max(days) <= today + timedelta(days=6)
    # Publishing again created nothing twice.
    assert len({(s.schedule_id, s.starts_at) for s in slots}) == len(slots)
    assert all(s.booked == 0 and s.capacity == 2 for s in slots)
