"""Booking's business rules in one import: the facade over catalogue, schedules, triage, bookings,
aftercare and the front desk's records (each takes the caller's connection and never commits).

Other rooms use `get_branch` (vouchers are redeemed at a branch) and `customer_has_booking`.
"""

from __future__ import annotations

from booking.aftercare import (
    add_consultation_follow_up,
    answer_survey,
    claim_reminder,
    complete_follow_up,
    create_follow_ups,
    due_reminder_ids,
    follow_ups,
    mark_no_shows,
    mark_reminder,
    reminder_key,
)
from booking.bookings import (
    book,
    cancel,
    customer_bookings,
    customer_has_booking,
    get_booking,
    get_customer_booking,
    reschedule,
    transition,
    triage_queue,
)
from booking.catalogue import (
    active_questionnaire,
    active_questionnaires,
    branch_zones,
    concern_options,
    create_branch,
    create_department,
    create_practitioner,
    create_service,
    get_branch,
    get_department,
    missing_branches,
    get_service,
    list_branches,
    list_departments,
    list_practitioners,
    list_services,
    publish_questionnaire,
    zone_of,
)
from booking.records import customer_record, queue_entries
from booking.schedules import (
    add_exception,
    change_slot,
    create_schedule,
    get_schedule,
    get_schedule_details,
    get_slot,
    list_schedules,
    offered_slots,
    publish_horizon,
    publish_slots,
    remaining,
    staff_slots,
)
from booking.triage import customer_triage, get_triage, read_triage, read_triages, submit_triage

__all__ = [
    "add_consultation_follow_up",
    "active_questionnaire", "active_questionnaires", "add_exception", "answer_survey", "book", "branch_zones",
    "cancel", "change_slot", "claim_reminder", "complete_follow_up", "concern_options", "create_branch",
    "create_department", "create_follow_ups", "create_practitioner", "create_schedule", "create_service",
    "customer_bookings", "customer_has_booking", "customer_record", "customer_triage", "due_reminder_ids",
    "follow_ups", "get_booking", "get_branch", "get_customer_booking", "get_department", "get_schedule",
    "get_schedule_details", "get_service", "get_slot", "get_triage", "list_branches", "list_departments",
    "list_practitioners", "list_schedules", "list_services", "mark_no_shows", "missing_branches", "mark_reminder", "offered_slots",
    "publish_horizon", "publish_questionnaire", "publish_slots", "queue_entries", "read_triage", "read_triages",
    "remaining", "reminder_key", "reschedule", "staff_slots", "submit_triage", "transition", "triage_queue",
    "zone_of",
]
