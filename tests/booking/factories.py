"""Booking factories: a branch, a department with a questionnaire, a slot a given time from now."""

from __future__ import annotations

import secrets
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from booking import service
from booking.models import Booking, Branch, Department, Schedule, Service, Slot
from kernel import clock
from kernel.db import transaction

MEDICAL = [
    {"key": "pregnant", "kind": "yes_no", "label": "Pregnant?", "contraindication": True},
    {"key": "anticoagulants", "kind": "yes_no", "label": "Anticoagulants?", "contraindication": True},
    {"key": "recent_procedure", "kind": "yes_no", "label": "Recent procedure?", "contraindication": False},
    {"key": "notes", "kind": "text", "label": "Anything else?", "required": False},
]


def _code(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


async def make_branch(**overrides: Any) -> Branch:
    fields: dict[str, Any] = dict(code=_code("br"), name="Branch " + secrets.token_hex(2))
    fields.update(overrides)
    async with transaction() as conn:
        return await service.create_branch(conn, **fields)


async def make_department(concerns: list[str] | None = None, questions: list[dict] | None = None,
                          **overrides: Any) -> Department:
    fields: dict[str, Any] = dict(code=_code("dep"), name="Dept " + secrets.token_hex(2))
    fields.update(overrides)
    async with transaction() as conn:
        department = await service.create_department(conn, **fields)
        if concerns is not None or questions is not None:
            items = []
            if concerns:
                items.append({"key": "concerns", "kind": "concerns", "label": "Concerns", "options": concerns})
            items.extend(MEDICAL if questions is None else questions)
            await service.publish_questionnaire(conn, department_id=department.id, title="t", questions=items)
        return department


async def make_service(department: Department, **overrides: Any) -> Service:
    fields: dict[str, Any] = dict(department_id=department.id, name="Svc " + secrets.token_hex(2), duration_minutes=30)
    fields.update(overrides)
    async with transaction() as conn:
        return await service.create_service(conn, **fields)


async def make_schedule(branch: Branch, department: Department, *, capacity: int = 3, slot_minutes: int = 30,
                        hours: list[tuple[int, str, str]] | None = None, valid_from: date | None = None) -> Schedule:
    async with transaction() as conn:
        return await service.create_schedule(
            conn, branch_id=branch.id, department_id=department.id, practitioner_id=None,
            slot_minutes=slot_minutes, capacity=capacity, valid_from=valid_from or date(2000, 1, 1),
            valid_until=None, hours=hours or [],
        )


async def make_slot(
    *, branch: Branch | None = None, department: Department | None = None, starts_at: datetime | None = None,
    starts_in: timedelta = timedelta(days=3), capacity: int = 3, minutes: int = 30,
) -> Slot:
    """One open slot, straight into the table (schedule arithmetic has its own tests)."""
    branch = branch or await make_branch()
    department = department or await make_department()
    schedule = await make_schedule(branch, department, capacity=capacity, slot_minutes=minutes)
    start = (starts_at or clock.now() + starts_in).replace(microsecond=0)
    return await Slot.create(
        schedule_id=schedule.id, branch_id=branch.id, department_id=department.id, starts_at=start,
        ends_at=start + timedelta(minutes=minutes), local_date=start.astimezone(ZoneInfo(branch.timezone)).date(),
        capacity=capacity,
    )


async def slot_seats(slot_id: int) -> tuple[int, int]:
    """(booked counter, bookings actually holding the slot): the two must always agree."""
    slot = await Slot.get(id=slot_id)
    # Only a cancellation gives the seat back; arrived, completed and no-show bookings keep it.
    holding = await Booking.filter(slot_id=slot_id).exclude(status="cancelled").count()
    return slot.booked, holding
