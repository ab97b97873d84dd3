"""What the front desk reads: the day's queue with each booking's customer, department, service
and triage answers, and one customer's whole history (bookings, answers, surveys, follow-ups)."""

from __future__ import annotations

from dataclasses import dataclass

from tortoise.backends.base.client import BaseDBAsyncClient

from booking.models import Booking, Department, FollowUpTask, Service, Survey, TriageSubmission
from booking.triage import ReadTriage, customer_triage, read_triages
from kernel.identity.models import Customer
from kernel.identity.service import get_customer


@dataclass(frozen=True)
class QueueEntry:
    booking: Booking
    customer: Customer | None
    department_name: str
    service_name: str | None
    triage: ReadTriage | None


async def queue_entries(conn: BaseDBAsyncClient, bookings: list[Booking]) -> list[QueueEntry]:
    """The related rows of a page of the queue, one query per kind rather than per booking."""
    customers = {c.id: c for c in await Customer.filter(id__in={b.customer_id for b in bookings}).using_db(conn)}
    departments = dict(
        await Department.filter(id__in={b.department_id for b in bookings}).using_db(conn).values_list("id", "name")
    )
    services = dict(
        await Service.filter(id__in={b.service_id for b in bookings if b.service_id}).using_db(conn).values_list(
            "id", "name"
        )
    )
    triage = await read_triages(
        conn, await TriageSubmission.filter(id__in={b.triage_id for b in bookings if b.triage_id}).using_db(conn)
    )
    return [
        QueueEntry(
            booking=b,
            customer=customers.get(b.customer_id),
            department_name=departments.get(b.department_id, ""),
            service_name=services.get(b.service_id) if b.service_id else None,
            triage=triage.get(b.triage_id) if b.triage_id else None,
        )
        for b in bookings
    ]


@dataclass(frozen=True)
class CustomerRecord:
    customer: Customer
    bookings: list[Booking]
    triage: list[ReadTriage]
    surveys: list[Survey]
    follow_ups: list[FollowUpTask]


async def customer_record(conn: BaseDBAsyncClient, customer_id: int) -> CustomerRecord:
    """Everything booking holds about one customer, latest first (follow-ups by due date)."""
    customer = await get_customer(conn, customer_id)
    submissions = await customer_triage(conn, customer_id)
    triage = await read_triages(conn, submissions)
    return CustomerRecord(
        customer=customer,
        bookings=await Booking.filter(customer_id=customer_id).using_db(conn).order_by("-starts_at", "-id"),
        triage=[triage[s.id] for s in submissions],
        surveys=await Survey.filter(customer_id=customer_id).using_db(conn).order_by("-id"),
        follow_ups=await FollowUpTask.filter(customer_id=customer_id).using_db(conn).order_by("due_date", "id"),
    )
