"""Bookings reports (consultations → paid treatments by doctor and department, no-shows) and survey scores
against brute force over generated visits: the 30-day conversion window to the second, a refund that
takes a conversion back, and survey answers either side of a Shanghai midnight."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import date, datetime, timedelta

from booking.models import Booking, Practitioner, Slot, Survey
from points_mall.models import Consumption
from tests.booking.factories import make_branch, make_department, make_schedule, make_service
from tests.factories import make_customer
from tests.reports.factories import SH, consume, fold, local, refund
from tests.reports.test_sales import report

NOW = local(2033, 11, 5)
RANGE = dict(date_from=date(2033, 10, 1), date_to=date(2033, 10, 31))


async def _slot(branch, department, schedule, practitioner_id: int | None, start: datetime) -> Slot:
    return await Slot.create(
        schedule_id=schedule.id, branch_id=branch.id, department_id=department.id, practitioner_id=practitioner_id,
        starts_at=start, ends_at=start + timedelta(minutes=30), local_date=start.astimezone(SH).date(), capacity=5,
    )


async def test_consultations_no_shows_and_surveys_equal_brute_force():
    rng = random.Random(7)
    branch = await make_branch()
    consult_dep, laser_dep = await make_department(), await make_department()
    consult_service = await make_service(consult_dep, requires_consultation=True)
    laser_service = await make_service(laser_dep)
    doctors = {
        consult_dep.id: await Practitioner.create(branch=branch, department=consult_dep, name="Dr Wang", created_at=NOW),
        laser_dep.id: await Practitioner.create(branch=branch, department=laser_dep, name="Dr Li", created_at=NOW),
    }
    schedules = {(d.id, doc): await make_schedule(branch, d) for d in (consult_dep, laser_dep)
                 for doc in (doctors[d.id].id, None)}
    slots: dict[tuple, Slot] = {}
    customers = [(await make_customer()).id for _ in range(14)]

    bookings: list[Booking] = []
    for _ in range(70):
        dep = rng.choice([consult_dep, laser_dep])
        start = datetime(2033, 10, rng.randint(1, 31), rng.choice([0, 7, 8, 15, 23]), rng.choice([0, 30]), tzinfo=SH)
        doctor = rng.choice([doctors[dep.id].id, None])
        key = (dep.id, doctor, start)
        if key not in slots:
            slots[key] = await _slot(branch, dep, schedules[(dep.id, doctor)], doctor, start)
        slot = slots[key]
        status = rng.choice(["completed", "completed", "completed", "no_show", "cancelled", "booked", "arrived"])
        service = rng.choice([consult_service, laser_service, None]) if dep is consult_dep else laser_service
        bookings.append(await Booking.create(
            customer_id=rng.choice(customers), slot=slot, branch_id=branch.id, department_id=dep.id,
            starts_at=start, ends_at=start + timedelta(minutes=30), local_date=slot.local_date, service=service,
            status=status, created_at=start - timedelta(days=2),
            completed_at=start + timedelta(hours=1) if status == "completed" else None,
        ))
    # Paid treatments around the completions: inside the 30 days, one second before the end, at the end (out).
    refs = []
    for b in rng.sample([b for b in bookings if b.status == "completed"], 12):
        offset = rng.choice([timedelta(0), timedelta(days=3), timedelta(days=30) - timedelta(seconds=1),
                             timedelta(days=30), timedelta(days=-1)])
        refs.append(await consume(b.customer_id, rng.randint(1, 500_000), b.completed_at + offset, branch.id))
    # Survey answers, some either side of midnight in Shanghai (16:00 UTC).
    answered = []
    for b in [b for b in bookings if b.status == "completed"][:20]:
        at = rng.choice([local(2033, 10, 31, 23, 59, 59), local(2033, 11, 1, 0, 0, 0), local(2033, 10, 15),
                         local(2033, 9, 30, 23, 59, 59), local(2033, 10, 1, 0, 0, 0)])
        answered.append(await Survey.create(booking=b, customer_id=b.customer_id, score=rng.randint(1, 5), created_at=at))

    await fold(NOW)
    await _check(branch.id, bookings, answered, consult_service.id, doctors)

    # A converting treatment refunded in full: the conversion (and what was paid) moves back.
    for ref in refs[:4]:
        c = await Consumption.get(external_ref=ref)
        await refund(ref, c.amount_fen, NOW)
    await fold(NOW)
    await _check(branch.id, bookings, answered, consult_service.id, doctors)


async def _check(branch_id, bookings, answered, consult_service_id, doctors) -> None:
    sales = await Consumption.filter(branch_id=branch_id).all()
    cells: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for b in bookings:
        if not (RANGE["date_from"] <= b.local_date <= RANGE["date_to"]):
            continue
        slot = await Slot.get(id=b.slot_id)
        cell = cells[(b.branch_id, b.department_id, slot.practitioner_id or 0)]
        cell[0] += b.status != "cancelled"
        cell[1] += b.status == "no_show"
        consult = b.status == "completed" and (b.service_id in (None, consult_service_id))
        if consult:
            cell[2] += 1
            window = [s for s in sales if s.customer_id == b.customer_id and s.amount_fen > s.refunded_fen
                      and b.completed_at <= s.occurred_at < b.completed_at + timedelta(days=30)]
            cell[3] += bool(window)
            cell[4] += sum(s.amount_fen - s.refunded_fen for s in window)
    got = await report("consultations", branch_id=branch_id, **RANGE)
    rows = {(r[0], r[2], r[4]): [r[6], r[7], r[9], r[10], r[12]] for r in got.rows}
    assert rows == {k: v for k, v in cells.items()}
    for r in got.rows:
        assert r[8] == (r[7] * 10000 * 2 + r[6]) // (2 * r[6]) if r[6] else r[8] is None
    assert any(v[3] for v in cells.values()), "the generated data should convert somebody"

    scores: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for s in answered:
        if not (RANGE["date_from"] <= s.created_at.astimezone(SH).date() <= RANGE["date_to"]):
            continue
        b = next(b for b in bookings if b.id == s.booking_id)
        slot = await Slot.get(id=b.slot_id)
        cell = scores[(b.branch_id, b.department_id, slot.practitioner_id or 0)]
        cell[0] += 1
        cell[1] += s.score
    got = await report("surveys", branch_id=branch_id, **RANGE)
    assert {(r[0], r[2], r[4]): [r[6], r[7], r[8]] for r in got.rows} == {
        k: [n, total, round(total / n, 2)] for k, (n, total) in scores.items()}
