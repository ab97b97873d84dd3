"""Booking's refusals, each with its HTTP status and stable code."""

from __future__ import annotations

from kernel.errors import Conflict, NotFound, ValidationFailed


class BranchNotFound(NotFound):
    code = "branch_not_found"
    default_message = "Branch not found."


class DepartmentNotFound(NotFound):
    code = "department_not_found"
    default_message = "Department not found."


class ServiceNotFound(NotFound):
    code = "service_not_found"
    default_message = "Service not found."


class PractitionerNotFound(NotFound):
    code = "practitioner_not_found"
    default_message = "Practitioner not found."


class ScheduleNotFound(NotFound):
    code = "schedule_not_found"
    default_message = "Schedule not found."


class SlotNotFound(NotFound):
    code = "slot_not_found"
    default_message = "Slot not found."


class BookingNotFound(NotFound):
    code = "booking_not_found"
    default_message = "Booking not found."


class QuestionnaireNotFound(NotFound):
    code = "questionnaire_not_found"
    default_message = "This department has no pre-triage questionnaire."


class TriageNotFound(NotFound):
    code = "triage_not_found"
    default_message = "Pre-triage submission not found."


class FollowUpNotFound(NotFound):
    code = "follow_up_not_found"
    default_message = "Follow-up task not found."


class CodeTaken(Conflict):
    code = "code_taken"
    default_message = "That code is already used."


class SlotFull(Conflict):
    code = "slot_full"
    default_message = "This time is fully booked."


class SlotClosed(Conflict):
    code = "slot_closed"
    default_message = "This time is no longer offered."


class TooLate(Conflict):
    code = "too_late"
    default_message = "This time starts too soon to be booked."


class AlreadyBooked(Conflict):
    code = "already_booked"
    default_message = "You already hold a booking at that time, or as many bookings as allowed."


class ChangeWindowClosed(Conflict):
    code = "change_window_closed"
    default_message = "This booking starts too soon to be cancelled or moved; please call the clinic."


class ConsultationRequired(Conflict):
    code = "consultation_required"
    default_message = "This treatment needs a consultation in its department first."


class TriageAlreadyUsed(Conflict):
    code = "triage_already_used"
    default_message = "This pre-triage form is already attached to another booking."


class IllegalTransition(Conflict):
    code = "illegal_transition"
    default_message = "The booking is not in a state that allows this."


class TooEarly(Conflict):
    code = "too_early"
    default_message = "The visit has not started yet."


class CapacityBelowBooked(Conflict):
    code = "capacity_below_booked"
    default_message = "More seats are already booked than the new capacity."


class SurveyAlreadyAnswered(Conflict):
    code = "survey_already_answered"
    default_message = "You already answered the survey of this visit."


class SurveyNotOpen(Conflict):
    code = "survey_not_open"
    default_message = "The survey opens once the visit is completed."


class FollowUpAlreadyDone(Conflict):
    code = "follow_up_already_done"
    default_message = "This follow-up is already done."


class InvalidHours(ValidationFailed):
    code = "invalid_hours"
    default_message = "Working hours must be HH:MM, start before end, at most 24 hours long."
