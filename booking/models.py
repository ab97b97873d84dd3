"""Tortoise models of booking: branches, departments, services, practitioners, schedules, slots,
pre-triage questionnaires and submissions, bookings, reminders, follow-up tasks and surveys.

Instants are stored in UTC; what a customer sees is converted to the branch's time zone. A slot also
keeps its `local_date` (the branch's calendar day of its start) so "the slots of Tuesday" and "the
triage queue of today" are plain indexed lookups.
"""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class Branch(Model):
    """A physical clinic location (院区/门店). Other rooms (voucher redemption) refer to it by id."""

    id = fields.BigIntField(primary_key=True)
    code = fields.CharField(max_length=32, unique=True)
    name = fields.CharField(max_length=64)
    address = fields.CharField(max_length=255, default="")
    phone = fields.CharField(max_length=32, default="")
    # IANA zone; every slot of the branch is generated and shown in it.
    timezone = fields.CharField(max_length=64, default="Asia/Shanghai")
    is_active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "booking_branch"


class Department(Model):
    """A department (科室): skin management, injection, laser, surgery..."""

    id = fields.BigIntField(primary_key=True)
    code = fields.CharField(max_length=32, unique=True)
    name = fields.CharField(max_length=64)
    description = fields.CharField(max_length=255, default="")
    sort_order = fields.IntField(default=0)
    is_active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "booking_department"


class Service(Model):
    """A bookable treatment (项目), e.g. "Thermage full face"."""

    id = fields.BigIntField(primary_key=True)
    department: fields.ForeignKeyRelation[Department] = fields.ForeignKeyField(
        "booking.Department", related_name="services", on_delete=fields.RESTRICT
    )
    name = fields.CharField(max_length=64)
    description = fields.CharField(max_length=255, default="")
    duration_minutes = fields.IntField(default=30)
    price_fen = fields.BigIntField(default=0)
    # A treatment that needs a doctor's consultation (面诊) in its department first.
    requires_consultation = fields.BooleanField(default=False)
    is_active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "booking_service"


class Practitioner(Model):
    """A doctor or therapist who works at a branch in a department."""

    id = fields.BigIntField(primary_key=True)
    branch: fields.ForeignKeyRelation[Branch] = fields.ForeignKeyField(
        "booking.Branch", related_name="practitioners", on_delete=fields.RESTRICT
    )
    department: fields.ForeignKeyRelation[Department] = fields.ForeignKeyField(
        "booking.Department", related_name="practitioners", on_delete=fields.RESTRICT
    )
    name = fields.CharField(max_length=64)
    title = fields.CharField(max_length=64, default="")
    # The staff account of the practitioner, when they have one (plain id: kernel row).
    staff_id = fields.BigIntField(null=True)
    is_active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "booking_practitioner"


class Schedule(Model):
    """Published working hours of a branch's department (optionally one practitioner's)."""

    id = fields.BigIntField(primary_key=True)
    branch: fields.ForeignKeyRelation[Branch] = fields.ForeignKeyField(
        "booking.Branch", related_name="schedules", on_delete=fields.RESTRICT
    )
    department: fields.ForeignKeyRelation[Department] = fields.ForeignKeyField(
        "booking.Department", related_name="schedules", on_delete=fields.RESTRICT
    )
    practitioner: fields.ForeignKeyNullableRelation[Practitioner] = fields.ForeignKeyField(
        "booking.Practitioner", related_name="schedules", null=True, on_delete=fields.RESTRICT
    )
    name = fields.CharField(max_length=64, default="")
    slot_minutes = fields.IntField()
    capacity = fields.IntField()
    valid_from = fields.DateField()
    valid_until = fields.DateField(null=True)
    is_active = fields.BooleanField(default=True)
    created_by = fields.BigIntField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "booking_schedule"


class ScheduleHours(Model):
    """One working window on a weekday, in minutes after local midnight.

    `end_minute` may pass 1440: an evening window that runs past midnight gives slots on the next
    local day (they still belong to the weekday the window starts on).
    """

    id = fields.BigIntField(primary_key=True)
    schedule: fields.ForeignKeyRelation[Schedule] = fields.ForeignKeyField(
        "booking.Schedule", related_name="hours", on_delete=fields.CASCADE
    )
    weekday = fields.SmallIntField()  # 0 = Monday, as date.weekday()
    start_minute = fields.IntField()
    end_minute = fields.IntField()

    class Meta:
        table = "booking_schedule_hours"


class ExceptionKind(StrEnum):
    closed = "closed"  # no slots on that date (holiday, training day)
    extra = "extra"  # an extra window on that date, added to the weekday's hours


class ScheduleException(Model):
    id = fields.BigIntField(primary_key=True)
    schedule: fields.ForeignKeyRelation[Schedule] = fields.ForeignKeyField(
        "booking.Schedule", related_name="exceptions", on_delete=fields.CASCADE
    )
    date = fields.DateField()
    kind = fields.CharEnumField(ExceptionKind, max_length=16)
    start_minute = fields.IntField(null=True)
    end_minute = fields.IntField(null=True)
    reason = fields.CharField(max_length=128, default="")
    created_at = fields.DatetimeField()

    class Meta:
        table = "booking_schedule_exception"
        indexes = (("schedule_id", "date"),)


class SlotStatus(StrEnum):
    open = "open"
    closed = "closed"


class Slot(Model):
    """A bookable time with a capacity. `booked` only moves by conditional updates."""

    id = fields.BigIntField(primary_key=True)
    schedule: fields.ForeignKeyRelation[Schedule] = fields.ForeignKeyField(
        "booking.Schedule", related_name="slots", on_delete=fields.RESTRICT
    )
    branch: fields.ForeignKeyRelation[Branch] = fields.ForeignKeyField(
        "booking.Branch", related_name="slots", on_delete=fields.RESTRICT
    )
    department: fields.ForeignKeyRelation[Department] = fields.ForeignKeyField(
        "booking.Department", related_name="slots", on_delete=fields.RESTRICT
    )
    practitioner_id = fields.BigIntField(null=True)
    starts_at = fields.DatetimeField()
    ends_at = fields.DatetimeField()
    local_date = fields.DateField()
    capacity = fields.IntField()
    booked = fields.IntField(default=0)
    status = fields.CharEnumField(SlotStatus, max_length=16, default=SlotStatus.open)

    class Meta:
        table = "booking_slot"
        # Publishing twice creates nothing new: one slot per schedule and start.
        unique_together = (("schedule_id", "starts_at"),)
        indexes = (("branch_id", "department_id", "local_date"), ("branch_id", "local_date"))


class TriageQuestionnaire(Model):
    """A department's pre-triage form (预检分诊). A new version replaces the active one.

    `questions` is a list of {key, kind: "concerns" | "text" | "yes_no", label, options?,
    contraindication?, required?}. A "yes" to a contraindication question flags the submission
    for a doctor's review.
    """

    id = fields.BigIntField(primary_key=True)
    department: fields.ForeignKeyRelation[Department] = fields.ForeignKeyField(
        "booking.Department", related_name="questionnaires", on_delete=fields.RESTRICT
    )
    version = fields.IntField()
    title = fields.CharField(max_length=128, default="")
    questions = fields.JSONField(default=list)
    is_active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "booking_triage_questionnaire"
        unique_together = (("department_id", "version"),)


class TriageSubmission(Model):
    """A customer's answers. Health data: the answers are encrypted at rest and never logged."""

    id = fields.BigIntField(primary_key=True)
    customer = fields.ForeignKeyField("kernel.Customer", related_name="triage_submissions", on_delete=fields.RESTRICT)
    questionnaire: fields.ForeignKeyRelation[TriageQuestionnaire] = fields.ForeignKeyField(
        "booking.TriageQuestionnaire", related_name="submissions", on_delete=fields.RESTRICT
    )
    department: fields.ForeignKeyRelation[Department] = fields.ForeignKeyField(
        "booking.Department", related_name="triage_submissions", on_delete=fields.RESTRICT
    )
    suggested_department: fields.ForeignKeyRelation[Department] = fields.ForeignKeyField(
        "booking.Department", related_name="suggested_triage_submissions", on_delete=fields.RESTRICT
    )
    # {"concerns": [...], "answers": {...}, "free_text": "...", "flags": [...]}, sealed with kernel.crypto.
    answers_sealed = fields.TextField()
    needs_review = fields.BooleanField(default=False)
    created_at = fields.DatetimeField()

    class Meta:
        table = "booking_triage_submission"


class BookingStatus(StrEnum):
    booked = "booked"
    arrived = "arrived"  # 到院
    completed = "completed"
    cancelled = "cancelled"
    no_show = "no_show"


class Booking(Model):
    """One seat of one slot held by a customer. Rescheduling moves the seat to another slot."""

    id = fields.BigIntField(primary_key=True)
    customer = fields.ForeignKeyField("kernel.Customer", related_name="bookings", on_delete=fields.RESTRICT)
    slot: fields.ForeignKeyRelation[Slot] = fields.ForeignKeyField(
        "booking.Slot", related_name="bookings", on_delete=fields.RESTRICT
    )
    # Copied from the slot (and moved with it on reschedule) so queues and checks need no join.
    branch_id = fields.BigIntField()
    department_id = fields.BigIntField()
    starts_at = fields.DatetimeField()
    ends_at = fields.DatetimeField()
    local_date = fields.DateField()
    service: fields.ForeignKeyNullableRelation[Service] = fields.ForeignKeyField(
        "booking.Service", related_name="bookings", null=True, on_delete=fields.RESTRICT
    )
    # One booking per triage submission: the answers travel with the booking.
    triage: fields.ForeignKeyNullableRelation[TriageSubmission] = fields.OneToOneField(
        "booking.TriageSubmission", related_name="booking", null=True, on_delete=fields.RESTRICT
    )
    needs_review = fields.BooleanField(default=False)
    status = fields.CharEnumField(BookingStatus, max_length=16, default=BookingStatus.booked)
    note = fields.CharField(max_length=500, default="")
    # The customer accepted the reminder subscribe message (wx.requestSubscribeMessage).
    remind = fields.BooleanField(default=True)
    reschedule_count = fields.IntField(default=0)
    created_at = fields.DatetimeField()
    cancelled_at = fields.DatetimeField(null=True)
    arrived_at = fields.DatetimeField(null=True)
    completed_at = fields.DatetimeField(null=True)
    no_show_at = fields.DatetimeField(null=True)

    class Meta:
        table = "booking_booking"
        indexes = (
            ("customer_id", "status", "starts_at"),
            ("branch_id", "local_date", "status"),
            ("status", "starts_at"),
        )


class NotificationStatus(StrEnum):
    sending = "sending"
    sent = "sent"
    failed = "failed"


class Notification(Model):
    """A subscribe message we decided to send: the unique key makes it go out at most once."""

    id = fields.BigIntField(primary_key=True)
    key = fields.CharField(max_length=128, unique=True)
    booking: fields.ForeignKeyRelation[Booking] = fields.ForeignKeyField(
        "booking.Booking", related_name="notifications", on_delete=fields.RESTRICT
    )
    kind = fields.CharField(max_length=32)
    status = fields.CharEnumField(NotificationStatus, max_length=16, default=NotificationStatus.sending)
    attempts = fields.IntField(default=1)
    last_error = fields.CharField(max_length=255, default="")
    created_at = fields.DatetimeField()
    sent_at = fields.DatetimeField(null=True)

    class Meta:
        table = "booking_notification"


class FollowUpStatus(StrEnum):
    open = "open"
    done = "done"


class FollowUpTask(Model):
    """A call-back (回访) for staff to work through, N days after a completed visit."""

    id = fields.BigIntField(primary_key=True)
    booking: fields.ForeignKeyRelation[Booking] = fields.ForeignKeyField(
        "booking.Booking", related_name="follow_ups", on_delete=fields.RESTRICT
    )
    customer_id = fields.BigIntField(db_index=True)
    branch_id = fields.BigIntField()
    days_after = fields.IntField()
    # "aftercare" (the calls after every completed visit) or "consultation" (咨询回访: a consultation
    # that was not followed by a paid treatment, created by the CRM room).
    kind = fields.CharField(max_length=16, default="aftercare", db_default="aftercare")
    due_date = fields.DateField()
    status = fields.CharEnumField(FollowUpStatus, max_length=16, default=FollowUpStatus.open)
    note = fields.CharField(max_length=1000, default="")
    done_by = fields.BigIntField(null=True)
    done_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "booking_follow_up"
        # The follow-up job may run twice; each task exists once.
        unique_together = (("booking_id", "kind", "days_after"),)
        indexes = (("status", "due_date"),)


class Survey(Model):
    """The satisfaction survey (满意度) of one completed booking, answered once."""

    id = fields.BigIntField(primary_key=True)
    booking: fields.OneToOneRelation[Booking] = fields.OneToOneField(
        "booking.Booking", related_name="survey", on_delete=fields.RESTRICT
    )
    customer_id = fields.BigIntField(db_index=True)
    score = fields.SmallIntField()
    comment = fields.CharField(max_length=1000, default="")
    created_at = fields.DatetimeField()

    class Meta:
        table = "booking_survey"
