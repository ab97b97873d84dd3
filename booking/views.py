"""Read side of booking that more than one route shapes: the branch and department lists (with each department's
concerns and services) and a booking as it goes out, in its branch's time zone."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from tortoise.backends.base.client import BaseDBAsyncClient

from booking import service
from booking.models import Booking
from booking.schedules import branch_through_cache
from booking.schemas import BranchList, BranchOut, DepartmentList, DepartmentOut, ServiceOut
from booking.visit_schemas import BookingOut
from kernel import clock


async def branch_list(conn: BaseDBAsyncClient) -> BranchList:
    return BranchList([BranchOut.of(b) for b in await service.list_branches(conn)])


async def department_list(conn: BaseDBAsyncClient) -> DepartmentList:
    """Every department with the concerns its active questionnaire offers and its services."""
    departments = await service.list_departments(conn)
    questionnaires = await service.active_questionnaires(conn)
    services = await service.list_services(conn)
    return DepartmentList([
        DepartmentOut(
            id=d.id, code=d.code, name=d.name, description=d.description,
            concerns=service.concern_options(questionnaires.get(d.id)),
            has_questionnaire=d.id in questionnaires,
            services=[ServiceOut.of(s) for s in services if s.department_id == d.id],
        )
        for d in departments
    ])


def booking_out(booking: Booking, zones: dict[int, ZoneInfo]) -> BookingOut:
    """A booking among many (`zones`: `service.branch_zones`, read once for the page)."""
    return BookingOut.of(booking, zones.get(booking.branch_id) or clock.clinic_zone())


async def one_booking_out(conn: BaseDBAsyncClient, booking: Booking) -> BookingOut:
    # Only the branch's zone is needed: from the shared short-lived cache, as the slot listing reads it.
    branch = await branch_through_cache(conn, booking.branch_id)
    return BookingOut.of(booking, service.zone_of(branch))
