"""Request and response structs of booking's set-up routes: the catalogue, schedules and slots; times go out
in UTC and in the branch's zone. A visit's structs (triage, bookings, the queue, follow-ups) are in visit_schemas.py."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

import msgspec

from booking.models import (
    Branch,
    Department,
    ExceptionKind,
    Practitioner,
    Schedule,
    ScheduleException,
    Service,
    Slot,
    SlotStatus,
    TriageQuestionnaire,
)
from booking.schedules import hhmm
from kernel.schemas import Id

Code = Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=r"^[a-z0-9_-]+$")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Short = Annotated[str, msgspec.Meta(max_length=255)]
HHMM = Annotated[str, msgspec.Meta(pattern=r"^\d{1,2}:\d{2}$")]
Note = Annotated[str, msgspec.Meta(max_length=500)]


def in_zone(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone)


# ---------------------------------------------------------------- catalogue


class BranchOut(msgspec.Struct):
    id: int
    code: str
    name: str
    address: str
    phone: str
    timezone: str
    is_active: bool

    @classmethod
    def of(cls, b: Branch) -> "BranchOut":
        return cls(b.id, b.code, b.name, b.address, b.phone, b.timezone, b.is_active)


class BranchCreate(msgspec.Struct, forbid_unknown_fields=True):
    code: Code
    name: Name
    address: Short = ""
    phone: Annotated[str, msgspec.Meta(max_length=32)] = ""
    timezone: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] = "Asia/Shanghai"


class ServiceOut(msgspec.Struct):
    id: int
    department_id: int
    name: str
    description: str
    duration_minutes: int
    price_fen: int
    requires_consultation: bool

    @classmethod
    def of(cls, s: Service) -> "ServiceOut":
        return cls(s.id, s.department_id, s.name, s.description, s.duration_minutes, s.price_fen,
                   s.requires_consultation)


class ServiceCreate(msgspec.Struct, forbid_unknown_fields=True):
    department_id: Id
    name: Name
    duration_minutes: Annotated[int, msgspec.Meta(ge=1, le=720)]
    price_fen: Annotated[int, msgspec.Meta(ge=0, le=10_000_000_000)] = 0
    requires_consultation: bool = False
    description: Short = ""


class DepartmentOut(msgspec.Struct):
    id: int
    code: str
    name: str
    description: str
    concerns: list[str]
    has_questionnaire: bool
    services: list[ServiceOut]


class DepartmentList(msgspec.Struct):
    items: list[DepartmentOut]


class DepartmentCreate(msgspec.Struct, forbid_unknown_fields=True):
    code: Code
    name: Name
    description: Short = ""
    sort_order: Annotated[int, msgspec.Meta(ge=-1_000_000, le=1_000_000)] = 0


class DepartmentCreated(msgspec.Struct):
    id: int
    code: str
    name: str

    @classmethod
    def of(cls, d: Department) -> "DepartmentCreated":
        return cls(d.id, d.code, d.name)


class BranchList(msgspec.Struct):
    items: list[BranchOut]


class PractitionerOut(msgspec.Struct):
    id: int
    branch_id: int
    department_id: int
    name: str
    title: str

    @classmethod
    def of(cls, p: Practitioner) -> "PractitionerOut":
        return cls(p.id, p.branch_id, p.department_id, p.name, p.title)


class PractitionerCreate(msgspec.Struct, forbid_unknown_fields=True):
    branch_id: Id
    department_id: Id
    name: Name
    title: Annotated[str, msgspec.Meta(max_length=64)] = ""
    staff_id: Id | None = None


class PractitionerList(msgspec.Struct):
    items: list[PractitionerOut]


class Question(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    key: Annotated[str, msgspec.Meta(min_length=1, max_length=48, pattern=r"^[a-z0-9_]+$")]
    kind: Literal["concerns", "text", "yes_no"]
    label: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    options: Annotated[list[Annotated[str, msgspec.Meta(min_length=1, max_length=48)]], msgspec.Meta(max_length=100)] | None = None
    required: bool | None = None
    # A "yes" means a doctor must review before the visit (pregnancy, anticoagulants, keloids...).
    contraindication: bool = False


class QuestionnaireIn(msgspec.Struct, forbid_unknown_fields=True):
    title: Annotated[str, msgspec.Meta(max_length=128)]
    questions: Annotated[list[Question], msgspec.Meta(min_length=1, max_length=60)]


class QuestionnaireOut(msgspec.Struct):
    id: int
    department_id: int
    version: int
    title: str
    questions: list[Question]

    @classmethod
    def of(cls, q: TriageQuestionnaire) -> "QuestionnaireOut":
        return cls(q.id, q.department_id, q.version, q.title, msgspec.convert(q.questions, list[Question]))


# ---------------------------------------------------------------- schedules and slots


class HoursIn(msgspec.Struct, forbid_unknown_fields=True):
    weekday: Annotated[int, msgspec.Meta(ge=0, le=6, description="0 = Monday")]
    start: HHMM
    end: Annotated[str, msgspec.Meta(pattern=r"^\d{1,2}:\d{2}$", description="before start = next day")]


class ScheduleCreate(msgspec.Struct, forbid_unknown_fields=True):
    branch_id: Id
    department_id: Id
    slot_minutes: Annotated[int, msgspec.Meta(ge=5, le=480)]
    capacity: Annotated[int, msgspec.Meta(ge=1, le=1000)]
    valid_from: date
    hours: Annotated[list[HoursIn], msgspec.Meta(min_length=1, max_length=50)]
    practitioner_id: Id | None = None
    valid_until: date | None = None
    name: Annotated[str, msgspec.Meta(max_length=64)] = ""


class HoursOut(msgspec.Struct):
    weekday: int
    start: str
    end: str


class ExceptionOut(msgspec.Struct):
    id: int
    date: date
    kind: ExceptionKind
    start: str | None
    end: str | None
    reason: str
    seats_still_booked: int | None = None

    @classmethod
    def of(cls, e: ScheduleException, seats_still_booked: int | None = None) -> "ExceptionOut":
        return cls(
            e.id, e.date, e.kind, hhmm(e.start_minute) if e.start_minute is not None else None,
            hhmm(e.end_minute) if e.end_minute is not None else None, e.reason, seats_still_booked,
        )


class ScheduleOut(msgspec.Struct):
    id: int
    branch_id: int
    department_id: int
    practitioner_id: int | None
    name: str
    slot_minutes: int
    capacity: int
    valid_from: date
    valid_until: date | None
    is_active: bool
    hours: list[HoursOut]
    exceptions: list[ExceptionOut]

    @classmethod
    def of(cls, s: Schedule) -> "ScheduleOut":
        """`s` comes with its hours and exceptions prefetched (schedules.get_schedule_details)."""
        return cls(
            s.id, s.branch_id, s.department_id, s.practitioner_id, s.name, s.slot_minutes, s.capacity,
            s.valid_from, s.valid_until, s.is_active,
            [
                HoursOut(h.weekday, hhmm(h.start_minute), hhmm(h.end_minute))
                for h in sorted(s.hours, key=lambda h: (h.weekday, h.start_minute))
            ],
            [ExceptionOut.of(e) for e in sorted(s.exceptions, key=lambda e: (e.date, e.id))],
        )


class ScheduleList(msgspec.Struct):
    items: list[ScheduleOut]


class ExceptionIn(msgspec.Struct, forbid_unknown_fields=True):
    date: date
    kind: ExceptionKind
    start: HHMM | None = None
    end: HHMM | None = None
    reason: Annotated[str, msgspec.Meta(max_length=128)] = ""


class PublishIn(msgspec.Struct, forbid_unknown_fields=True):
    days: Annotated[int, msgspec.Meta(ge=1, le=92)] = 7
    from_date: date | None = None


class PublishOut(msgspec.Struct):
    schedule_id: int
    from_date: date
    days: int
    created: int


class SlotOut(msgspec.Struct):
    id: int
    branch_id: int
    department_id: int
    practitioner_id: int | None
    starts_at: datetime
    ends_at: datetime
    local_start: datetime
    local_end: datetime
    local_date: date
    capacity: int
    remaining: int

    @classmethod
    def of(cls, s: Slot, zone: ZoneInfo) -> "SlotOut":
        return cls(
            s.id, s.branch_id, s.department_id, s.practitioner_id, s.starts_at, s.ends_at,
            in_zone(s.starts_at, zone), in_zone(s.ends_at, zone), s.local_date, s.capacity,
            max(0, s.capacity - s.booked),
        )


class SlotList(msgspec.Struct):
    branch_id: int
    department_id: int
    date: date
    timezone: str
    items: list[SlotOut]


class StaffSlotOut(SlotOut):
    booked: int = 0
    status: SlotStatus = SlotStatus.open


class StaffSlotList(msgspec.Struct):
    branch_id: int
    date: date
    timezone: str
    items: list[StaffSlotOut]


class SlotUpdate(msgspec.Struct, forbid_unknown_fields=True):
    capacity: Annotated[int, msgspec.Meta(ge=1, le=1000)] | None = None
    status: SlotStatus | None = None
