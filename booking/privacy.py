"""Booking's part of a customer's data export and erasure (PIPL, see kernel/privacy.py).

Erasure removes the health answers and every free text about the person (notes, survey comments,
follow-up call notes), cancels upcoming bookings (their seats go back), and keeps the visit rows
themselves (dates, statuses, departments) so the clinic's capacity and visit counts stay true.
"""

from __future__ import annotations

from typing import Any

import msgspec
from tortoise.backends.base.client import BaseDBAsyncClient

from booking.bookings import release_seat
from booking.models import Booking, BookingStatus, FollowUpTask, Survey, TriageSubmission
from booking.triage import read_triage
from kernel import clock, crypto
from kernel.privacy import rows_of


TABLES = [
    (Booking, "customer_id", "bookings"),
    (TriageSubmission, "customer_id", "triage"),
    (Survey, "customer_id", "surveys"),
    (FollowUpTask, "customer_id", "follow_ups"),
]


async def export(conn: BaseDBAsyncClient, customer_id: int) -> dict[str, Any]:
    triage = []
    for submission in await TriageSubmission.filter(customer_id=customer_id).using_db(conn).order_by("id"):
        content = await read_triage(conn, submission)
        triage.append({
            "id": submission.id, "department_id": submission.department_id, "concerns": content.concerns,
            "answers": content.answers, "needs_doctor_review": submission.needs_review,
            "created_at": submission.created_at.isoformat(),
        })
    return {
        "bookings": await rows_of(
            Booking.filter(customer_id=customer_id).using_db(conn),
            "id", "status", "branch_id", "department_id", "service_id", "starts_at", "note", "created_at",
        ),
        "triage": triage,
        "surveys": await rows_of(
            Survey.filter(customer_id=customer_id).using_db(conn), "booking_id", "score", "comment", "created_at"
        ),
        "follow_ups": await rows_of(
            FollowUpTask.filter(customer_id=customer_id).using_db(conn),
            "booking_id", "days_after", "due_date", "status", "note", "done_at",
        ),
    }


async def erase(conn: BaseDBAsyncClient, customer_id: int) -> None:
    """Safe to run twice: every step is an overwrite or a conditional update."""
    upcoming = await Booking.filter(customer_id=customer_id, status=BookingStatus.booked).using_db(conn)
    for booking in upcoming:
        cancelled = await Booking.filter(id=booking.id, status=BookingStatus.booked).using_db(conn).update(
            status=BookingStatus.cancelled, cancelled_at=clock.now()
        )
        if cancelled:
            await release_seat(conn, booking.slot_id)
    await Booking.filter(customer_id=customer_id).using_db(conn).update(note="")
    for submission in await TriageSubmission.filter(customer_id=customer_id).using_db(conn):
        version = msgspec.json.decode(crypto.unseal(submission.answers_sealed)).get("questionnaire_version", 0)
        blank = {"concerns": [], "answers": {}, "flags": [], "questionnaire_version": version, "erased": True}
        await TriageSubmission.filter(id=submission.id).using_db(conn).update(
            answers_sealed=crypto.seal(msgspec.json.encode(blank).decode())
        )
    await Survey.filter(customer_id=customer_id).using_db(conn).update(comment="")
    await FollowUpTask.filter(customer_id=customer_id).using_db(conn).update(note="")
