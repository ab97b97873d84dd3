"""Bookings: take a seat, cancel, reschedule, and the front desk's state transitions.

Seats only move through conditional updates (`booked < capacity`, `booked >= 1`) whose affected
row count is checked; a customer's own booking transactions are serialised by locking their
customer row first, so the overlap and "how many do I hold" checks cannot race each other.
Lock order everywhere: customer row, booking row, slot rows in id order.
"""

from __future__ import annotations

import functools
from datetime import timedelta

import structlog
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F

from booking.catalogue import get_branch, get_service, zone_of
from booking.errors import (
    AlreadyBooked,
    BookingNotFound,
    ChangeWindowClosed,
    ConsultationRequired,
    IllegalTransition,
    SlotClosed,
    SlotFull,
    SlotNotFound,
    TooEarly,
    TooLate,
    TriageAlreadyUsed,
)
from booking.models import Booking, BookingStatus, Slot, SlotStatus
from booking.schedules import get_slot
from booking.settings import get_booking_settings
from booking.triage import get_triage
from kernel import clock
from kernel.batch import Batch, from_packed, model_columns, packed, unpacked
from kernel.errors import ValidationFailed
from kernel.identity.service import AccountErased, customer_lock_statement, lock_customers
from kernel.outbox import enqueue
from kernel.rows import RowInsert
from kernel.sql import utc

log = structlog.get_logger(__name__)

# Bookings that hold a seat and a place in the customer's day.
HOLDING = (BookingStatus.booked, BookingStatus.arrived)


async def _lock_customer(conn: BaseDBAsyncClient, customer_id: int) -> None:
    # Only a customer's own requests come here; an erased customer (the booking route's guard leaves that
    # check to this lock) is answered as the guard would.
    if not await lock_customers(conn, {customer_id}, active_only=True):
        raise AccountErased()


async def _lock_slots(conn: BaseDBAsyncClient, *slot_ids: int) -> None:
    # Always in id order, so two reschedules crossing between the same two slots cannot deadlock.
    await Slot.filter(id__in=sorted(set(slot_ids))).select_for_update().using_db(conn).order_by("id").values_list(
        "id", flat=True
    )


_TAKE_SEAT = "UPDATE booking_slot SET booked = booked + 1 WHERE id = %s AND status = %s AND booked < capacity"


async def take_seat(conn: BaseDBAsyncClient, slot_id: int) -> None:
    """One seat, in one statement: `booked + 1 WHERE status = 'open' AND booked < capacity`."""
    if conn.capabilities.dialect == "mysql":  # the hot slot's statement, without the ORM's query building
        taken, _ = await conn.execute_query(_TAKE_SEAT, [slot_id, SlotStatus.open.value])
    else:
        taken = await Slot.filter(id=slot_id, status=SlotStatus.open, booked__lt=F("capacity")).using_db(
            conn
        ).update(booked=F("booked") + 1)
    if taken != 1:
        await _refuse_seat(conn, slot_id)


async def _refuse_seat(conn: BaseDBAsyncClient, slot_id: int) -> None:
    """After the seat's UPDATE changed nothing: closed, or full."""
    slot = await get_slot(conn, slot_id)
    if slot.status != SlotStatus.open:
        raise SlotClosed(field="slot_id")
    raise SlotFull(field="slot_id", capacity=slot.capacity)


async def release_seat(conn: BaseDBAsyncClient, slot_id: int) -> None:
    released = await Slot.filter(id=slot_id, booked__gte=1).using_db(conn).update(booked=F("booked") - 1)
    if released != 1:  # would mean a seat was released twice: keep going, but make it visible
        log.error("booking.seat_release_mismatch", slot_id=slot_id)


def _overlapping(conn: BaseDBAsyncClient, customer_id: int, slot: Slot):
    """The customer's bookings holding a seat at a time that overlaps the slot (`_slot_and_holdings`'s clash)."""
    return Booking.filter(
        customer_id=customer_id, status__in=HOLDING, starts_at__lt=slot.ends_at, ends_at__gt=slot.starts_at
    ).using_db(conn)


async def _check_no_overlap(conn: BaseDBAsyncClient, customer_id: int, slot: Slot, *, moving: Booking) -> None:
    """A rescheduled booking must not overlap the customer's other bookings (new ones: `_check_new_holding`)."""
    clash = await _overlapping(conn, customer_id, slot).exclude(id=moving.id).first()
    if clash is not None:
        raise AlreadyBooked(field="slot_id", reason="overlap", booking_id=clash.id)


def _check_notice(slot: Slot) -> None:
    earliest = clock.now() + timedelta(minutes=get_booking_settings().min_notice_minutes)
    if slot.starts_at < earliest:
        raise TooLate(field="slot_id", earliest=earliest.isoformat())


def _check_change_window(booking: Booking) -> None:
    hours = get_booking_settings().cancel_window_hours
    if clock.now() > booking.starts_at - timedelta(hours=hours):
        raise ChangeWindowClosed(hours_before=hours)


# The slot with the customer's clashing booking and count of upcoming ones, in one round trip (MySQL/MariaDB;
# the general path reads them apart). Read after the customer row is locked, so they cannot race the
# customer's other booking transactions.
@functools.cache
def _slot_and_holdings() -> str:
    # One JSON column (kernel.batch.packed): the slot's columns, then the clash and the count.
    return packed(
        *(f"s.{column}" for column in model_columns(Slot)),
        "(SELECT b.id FROM booking_booking b WHERE b.customer_id = %s AND b.status IN (%s, %s)"
        " AND b.starts_at < s.ends_at AND b.ends_at > s.starts_at LIMIT 1)",
        "(SELECT COUNT(*) FROM booking_booking b WHERE b.customer_id = %s AND b.status = %s AND b.starts_at >= %s)",
    ) + " FROM booking_slot s WHERE s.id = %s"


_BOOKING_ROW = RowInsert(Booking)


async def slot_and_holdings_general(
    conn: BaseDBAsyncClient, customer_id: int, slot_id: int
) -> tuple[Slot, int | None, int]:
    """(the slot, a booking of the customer overlapping it or None, the customer's upcoming bookings)."""
    slot = await get_slot(conn, slot_id)
    clash = await _overlapping(conn, customer_id, slot).first()
    held = await Booking.filter(
        customer_id=customer_id, status=BookingStatus.booked, starts_at__gte=clock.now()
    ).using_db(conn).count()
    return slot, clash.id if clash is not None else None, held


def _slot_and_holdings_params(customer_id: int, slot_id: int) -> list:
    return [customer_id, BookingStatus.booked.value, BookingStatus.arrived.value,
            customer_id, BookingStatus.booked.value, utc(clock.now()), slot_id]


def _slot_of(rows: list[dict]) -> tuple[Slot, int | None, int]:
    if not rows:
        raise SlotNotFound(field="slot_id")
    *slot, clash, held = unpacked(rows[0])
    return from_packed(Slot, slot), clash, int(held)


async def _locked_customer_slot_and_holdings(
    conn: BaseDBAsyncClient, customer_id: int, slot_id: int
) -> tuple[Slot, int | None, int]:
    """The customer's lock (`_lock_customer`), then the slot with the customer's clash and count, in one round
    trip: the read runs after the lock in the same order as two statements, so it sees what the previous
    holder of the lock committed (MySQL/MariaDB)."""
    if conn.capabilities.dialect != "mysql":
        await _lock_customer(conn, customer_id)
        return await slot_and_holdings_general(conn, customer_id, slot_id)
    batch = Batch(conn)
    locked = batch.add(*customer_lock_statement({customer_id}, active_only=True))
    slot = batch.add(_slot_and_holdings(), _slot_and_holdings_params(customer_id, slot_id))
    await batch.send()
    if not locked.rows:
        raise AccountErased()
    return _slot_of(slot.rows)


def _check_new_holding(clash: int | None, held: int) -> None:
    if clash is not None:
        raise AlreadyBooked(field="slot_id", reason="overlap", booking_id=clash)
    limit = get_booking_settings().max_active_bookings
    if held >= limit:
        raise AlreadyBooked(field="slot_id", reason="limit", limit=limit)


async def _take_seat_and_insert(conn: BaseDBAsyncClient, slot_id: int, values: dict) -> Booking:
    """The seat and the booking: one round trip on MySQL/MariaDB, where the booking is written only when the
    seat was taken (a full slot's refusals write and roll back nothing). A second use of the triage (its
    unique key) is refused at the insert, after the seat, as the two statements one by one did."""
    if conn.capabilities.dialect != "mysql":
        await take_seat(conn, slot_id)
        try:
            return await Booking.create(**values, using_db=conn)
        except IntegrityError as exc:
            raise TriageAlreadyUsed(field="triage_id") from exc
    batch = Batch(conn)
    seat = batch.add(_TAKE_SEAT, [slot_id, SlotStatus.open.value])
    batch.add("SET @batch_seat = ROW_COUNT()")
    booking = _BOOKING_ROW.add(batch, when="@batch_seat = 1", **values)
    try:
        await batch.send()
    except IntegrityError as exc:
        if batch.failed is booking.answer:  # the triage unique key: it was attached elsewhere meanwhile
            raise TriageAlreadyUsed(field="triage_id") from exc
        raise
    if seat.rowcount != 1:
        await _refuse_seat(conn, slot_id)
    return booking.saved()


async def book(
    conn: BaseDBAsyncClient,
    *,
    customer_id: int,
    slot_id: int,
    service_id: int | None = None,
    triage_id: int | None = None,
    note: str = "",
    remind: bool = True,
) -> Booking:
    """Take one seat of a slot for a customer, with the triage answers attached.

    On MySQL/MariaDB the common booking is two round trips of parameterised SQL inside its transaction
    (`kernel.batch`): the customer lock with the slot and the customer's clash and count, then the seat with
    the insert. The ORM's query building and hydration, then the round trips, were most of its CPU. The
    service and triage checks, when asked for, stay on the ORM between the two."""
    slot, clash, held = await _locked_customer_slot_and_holdings(conn, customer_id, slot_id)
    if slot.status != SlotStatus.open:
        raise SlotClosed(field="slot_id")
    _check_notice(slot)
    if service_id is not None:
        service = await get_service(conn, service_id, active_only=True)
        if service.department_id != slot.department_id:
            raise ValidationFailed("This service is not offered in that slot's department.", field="service_id")
        if service.requires_consultation and not await Booking.filter(
            customer_id=customer_id, department_id=service.department_id, status=BookingStatus.completed
        ).using_db(conn).exists():
            raise ConsultationRequired(department_id=service.department_id)
    needs_review = False
    if triage_id is not None:
        triage = await get_triage(conn, triage_id, customer_id=customer_id)
        if await Booking.filter(triage_id=triage.id).using_db(conn).exists():
            raise TriageAlreadyUsed(field="triage_id")
        needs_review = triage.needs_review
    _check_new_holding(clash, held)
    return await _take_seat_and_insert(conn, slot.id, dict(
        customer_id=customer_id, slot_id=slot.id, branch_id=slot.branch_id, department_id=slot.department_id,
        starts_at=slot.starts_at, ends_at=slot.ends_at, local_date=slot.local_date, service_id=service_id,
        triage_id=triage_id, needs_review=needs_review, note=note, remind=remind, created_at=clock.now(),
    ))


async def _locked_booking(conn: BaseDBAsyncClient, booking_id: int, customer_id: int | None) -> Booking:
    query = Booking.filter(id=booking_id).select_for_update().using_db(conn)
    if customer_id is not None:
        query = query.filter(customer_id=customer_id)
    booking = await query.first()
    if booking is None:
        raise BookingNotFound()
    return booking


async def cancel(conn: BaseDBAsyncClient, *, customer_id: int, booking_id: int) -> Booking:
    """The customer cancels; the seat goes back exactly once (the status update is conditional)."""
    booking = await _locked_booking(conn, booking_id, customer_id)
    if booking.status != BookingStatus.booked:
        raise IllegalTransition(status=booking.status.value, to=BookingStatus.cancelled.value)
    _check_change_window(booking)
    cancelled = await Booking.filter(id=booking.id, status=BookingStatus.booked, slot_id=booking.slot_id).using_db(
        conn
    ).update(status=BookingStatus.cancelled, cancelled_at=clock.now())
    if cancelled != 1:
        raise IllegalTransition(status="changed", to=BookingStatus.cancelled.value)
    await release_seat(conn, booking.slot_id)
    return await Booking.get(id=booking.id, using_db=conn)


async def reschedule(conn: BaseDBAsyncClient, *, customer_id: int, booking_id: int, slot_id: int) -> Booking:
    """Move a booking to another slot atomically: the new seat is taken before the old is released,
    in one transaction, so the customer never holds zero or two seats."""
    await _lock_customer(conn, customer_id)
    booking = await _locked_booking(conn, booking_id, customer_id)
    if booking.status != BookingStatus.booked:
        raise IllegalTransition(status=booking.status.value, to="rescheduled")
    _check_change_window(booking)
    if slot_id == booking.slot_id:
        raise ValidationFailed("The booking is already in this slot.", field="slot_id")
    target = await get_slot(conn, slot_id)
    if target.department_id != booking.department_id:
        raise ValidationFailed("Pick a slot of the same department.", field="slot_id")
    if target.status != SlotStatus.open:
        raise SlotClosed(field="slot_id")
    _check_notice(target)
    await _check_no_overlap(conn, customer_id, target, moving=booking)
    await _lock_slots(conn, booking.slot_id, target.id)
    await take_seat(conn, target.id)
    moved = await Booking.filter(id=booking.id, status=BookingStatus.booked, slot_id=booking.slot_id).using_db(
        conn
    ).update(
        slot_id=target.id, branch_id=target.branch_id, starts_at=target.starts_at, ends_at=target.ends_at,
        local_date=target.local_date, reschedule_count=F("reschedule_count") + 1,
    )
    if moved != 1:  # cannot happen under the row lock; refuse rather than leak the new seat
        raise IllegalTransition(status="changed", to="rescheduled")
    await release_seat(conn, booking.slot_id)
    return await Booking.get(id=booking.id, using_db=conn)


async def get_customer_booking(conn: BaseDBAsyncClient, customer_id: int, booking_id: int) -> Booking:
    booking = await Booking.get_or_none(id=booking_id, customer_id=customer_id, using_db=conn)
    if booking is None:
        raise BookingNotFound()
    return booking


async def get_booking(conn: BaseDBAsyncClient, booking_id: int) -> Booking:
    booking = await Booking.get_or_none(id=booking_id, using_db=conn)
    if booking is None:
        raise BookingNotFound()
    return booking


async def customer_bookings(
    conn: BaseDBAsyncClient, customer_id: int, *, status: BookingStatus | None = None, limit: int = 50,
    offset: int = 0,
) -> tuple[int, list[Booking]]:
    query = Booking.filter(customer_id=customer_id).using_db(conn)
    if status is not None:
        query = query.filter(status=status)
    return await query.count(), await query.order_by("-starts_at", "-id").offset(offset).limit(limit)


async def customer_has_booking(conn: BaseDBAsyncClient, customer_id: int) -> bool:
    """Contract for other rooms: the customer has made a booking that was not cancelled."""
    return await Booking.filter(customer_id=customer_id).exclude(status=BookingStatus.cancelled).using_db(
        conn
    ).exists()


# Front desk: action -> (from, to, timestamp field).
_TRANSITIONS = {
    "arrive": (BookingStatus.booked, BookingStatus.arrived, "arrived_at"),
    "complete": (BookingStatus.arrived, BookingStatus.completed, "completed_at"),
    "no_show": (BookingStatus.booked, BookingStatus.no_show, "no_show_at"),
}


async def transition(conn: BaseDBAsyncClient, booking_id: int, action: str) -> Booking:
    """booked → arrived → completed, booked → no_show; anything else is refused.

    Completing enqueues the follow-up job and the CRM's after-visit job (after commit, through the outbox).
    """
    source, target, stamp = _TRANSITIONS[action]
    booking = await get_booking(conn, booking_id)
    if booking.status != source:
        raise IllegalTransition(status=booking.status.value, to=target.value)
    now = clock.now()
    if action == "arrive":
        branch = await get_branch(conn, booking.branch_id)
        if booking.local_date > clock.local_today(zone_of(branch)):
            raise TooEarly("Arrival is recorded on the day of the visit.")
    if action == "no_show" and now < booking.starts_at:
        raise TooEarly()
    changed = await Booking.filter(id=booking.id, status=source).using_db(conn).update(
        status=target, **{stamp: now}
    )
    if changed != 1:  # another desk got there first
        raise IllegalTransition(status="changed", to=target.value)
    if action == "complete":
        await enqueue(conn, "booking.create_follow_ups", booking.id)
        # The CRM gives its after-visit coupon; named, not imported (the booking room imports no other room,
        # as the points room tells referrals: docs/architecture.md).
        await enqueue(conn, "crm.visit_completed", booking.id)
    return await Booking.get(id=booking.id, using_db=conn)


async def triage_queue(
    conn: BaseDBAsyncClient, *, day, branch_id: int | None = None, status: BookingStatus | None = None,
    limit: int = 200, offset: int = 0,
) -> tuple[int, list[Booking]]:
    """The day's bookings, those flagged for a doctor's review first, then by start time."""
    query = Booking.filter(local_date=day).using_db(conn)
    if branch_id is not None:
        query = query.filter(branch_id=branch_id)
    if status is not None:
        query = query.filter(status=status)
    rows = await query.order_by("-needs_review", "starts_at", "id").offset(offset).limit(limit)
    return await query.count(), rows
