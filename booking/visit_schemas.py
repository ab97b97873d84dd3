"""Request and response structs of a visit: pre-triage, bookings, the front desk's queue, surveys, follow-ups and
a customer's history; times go out in UTC and in the branch's zone."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

import msgspec

from booking.models import Booking, BookingStatus, FollowUpStatus, FollowUpTask, Survey
from booking.schemas import Note, in_zone
from booking.triage import ReadTriage
from kernel.schemas import Id, Page


# ---------------------------------------------------------------- triage


Answer = bool | Annotated[str, msgspec.Meta(max_length=1000)]


class TriageCreate(msgspec.Struct, forbid_unknown_fields=True):
    concerns: Annotated[list[Annotated[str, msgspec.Meta(max_length=48)]], msgspec.Meta(max_length=20)] = []
    answers: Annotated[dict[Annotated[str, msgspec.Meta(max_length=48)], Answer], msgspec.Meta(max_length=60)] = {}
    department_id: Id | None = None


class TriageResult(msgspec.Struct):
    id: int
    department_id: int
    suggested_department_id: int
    suggested_department_name: str
    needs_doctor_review: bool
    flagged: list[str]
    created_at: datetime


class AnswerOut(msgspec.Struct):
    key: str
    label: str
    kind: str
    value: bool | str
    contraindication: bool


class TriageDetail(msgspec.Struct):
    id: int
    department_id: int
    suggested_department_id: int
    questionnaire_version: int
    needs_doctor_review: bool
    concerns: list[str]
    answers: list[AnswerOut]
    flagged: list[str]
    booking_id: int | None
    created_at: datetime

    @classmethod
    def of(cls, read: ReadTriage) -> "TriageDetail":
        t, content = read.submission, read.content
        labels = {q["key"]: q for q in content.questions}
        answers = [
            AnswerOut(
                key=key, label=labels.get(key, {}).get("label", key), kind=labels.get(key, {}).get("kind", ""),
                value=value, contraindication=bool(labels.get(key, {}).get("contraindication")),
            )
            for key, value in content.answers.items()
        ]
        return cls(
            t.id, t.department_id, t.suggested_department_id, content.questionnaire_version, t.needs_review,
            content.concerns, answers, content.flags, read.booking_id, t.created_at,
        )


# ---------------------------------------------------------------- bookings


class BookingCreate(msgspec.Struct, forbid_unknown_fields=True):
    slot_id: Id
    service_id: Id | None = None
    triage_id: Id | None = None
    note: Note = ""
    # Whether the customer accepted the reminder subscription (wx.requestSubscribeMessage).
    remind: bool = True


class Reschedule(msgspec.Struct, forbid_unknown_fields=True):
    slot_id: Id


class BookingOut(msgspec.Struct):
    id: int
    status: BookingStatus
    slot_id: int
    branch_id: int
    department_id: int
    service_id: int | None
    triage_id: int | None
    needs_doctor_review: bool
    starts_at: datetime
    ends_at: datetime
    local_start: datetime
    local_date: date
    note: str
    reschedule_count: int
    created_at: datetime
    cancelled_at: datetime | None
    arrived_at: datetime | None
    completed_at: datetime | None
    no_show_at: datetime | None

    @classmethod
    def of(cls, b: Booking, zone: ZoneInfo) -> "BookingOut":
        return cls(
            b.id, b.status, b.slot_id, b.branch_id, b.department_id, b.service_id, b.triage_id, b.needs_review,
            b.starts_at, b.ends_at, in_zone(b.starts_at, zone), b.local_date, b.note, b.reschedule_count,
            b.created_at, b.cancelled_at, b.arrived_at, b.completed_at, b.no_show_at,
        )


class BookingPage(Page):
    items: list[BookingOut]


class CustomerBrief(msgspec.Struct):
    id: int
    nickname: str
    phone: str | None  # masked


class QueueEntry(msgspec.Struct):
    booking: BookingOut
    customer: CustomerBrief
    department_name: str
    service_name: str | None
    triage: TriageDetail | None


class TriageQueue(Page):
    date: date
    items: list[QueueEntry]


class SurveyIn(msgspec.Struct, forbid_unknown_fields=True):
    score: Annotated[int, msgspec.Meta(ge=1, le=5)]
    comment: Annotated[str, msgspec.Meta(max_length=1000)] = ""


class SurveyOut(msgspec.Struct):
    id: int
    booking_id: int
    score: int
    comment: str
    created_at: datetime

    @classmethod
    def of(cls, s: Survey) -> "SurveyOut":
        return cls(s.id, s.booking_id, s.score, s.comment, s.created_at)


# ---------------------------------------------------------------- follow-ups and history


class FollowUpOut(msgspec.Struct):
    id: int
    booking_id: int
    customer_id: int
    branch_id: int
    days_after: int
    due_date: date
    status: FollowUpStatus
    note: str
    done_by: int | None
    done_at: datetime | None
    # "aftercare" (after every completed visit) or "consultation" (咨询回访, created by the CRM room).
    kind: str = "aftercare"

    @classmethod
    def of(cls, f: FollowUpTask) -> "FollowUpOut":
        return cls(f.id, f.booking_id, f.customer_id, f.branch_id, f.days_after, f.due_date, f.status, f.note,
                   f.done_by, f.done_at, f.kind)


class FollowUpPage(Page):
    items: list[FollowUpOut]


class FollowUpDone(msgspec.Struct, forbid_unknown_fields=True):
    note: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]


class CustomerHistory(msgspec.Struct):
    customer: CustomerBrief
    bookings: list[BookingOut]
    triage: list[TriageDetail]
    surveys: list[SurveyOut]
    follow_ups: list[FollowUpOut]
