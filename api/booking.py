"""Booking routes for customers (/app): the catalogue, slots, pre-triage and their bookings."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from litestar import Controller
from litestar.di import Provide
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK
from tortoise.backends.base.client import BaseDBAsyncClient

from api.deps import Db, Limit, Offset
from api.handlers import get, post
from api.security import ERASURE_CHECKED_BY_WORK, customer_guard, provide_customer_id
from booking import service, views
from booking.models import BookingStatus
from booking.schemas import BranchList, DepartmentList, QuestionnaireOut, SlotList
from booking.visit_schemas import (
    BookingCreate,
    BookingOut,
    BookingPage,
    Reschedule,
    SurveyIn,
    SurveyOut,
    TriageCreate,
    TriageDetail,
    TriageResult,
)


BranchId = Annotated[int, Parameter(ge=1, description="Branch id")]
DepartmentId = Annotated[int, Parameter(ge=1, description="Department id")]
Day = Annotated[date | None, Parameter(description="Local date in the branch's time zone; default today")]


class BookingCatalogueController(Controller):
    path = "/app/booking"
    tags = ["customer: booking"]
    guards = [customer_guard]

    @get("/branches", summary="Branches (院区) that take bookings")
    async def branches(self, db: Db) -> BranchList:
        return await db.run(views.branch_list)

    @get("/departments", summary="Departments with their concerns and services")
    async def departments(self, db: Db) -> DepartmentList:
        return await db.run(views.department_list)

    @get("/slots", summary="Bookable slots of a local day with the seats left")
    async def slots(
        self, db: Db, branch_id: BranchId, department_id: DepartmentId, date: Day = None,
        practitioner_id: int | None = None,
    ) -> SlotList:
        # The hottest read: plain autocommit reads (nothing is written), through the shared short-lived
        # cache of what every customer sees alike (kernel.cache); the minimum notice is applied per request.
        listing = await db.read(
            service.customer_slot_listing, branch_id=branch_id, department_id=department_id, day=date,
            practitioner_id=practitioner_id,
        )
        branch = listing.branch
        return SlotList(branch.id, department_id, listing.day, branch.timezone, listing.slots)


class TriageController(Controller):
    path = "/app/triage"
    tags = ["customer: pre-triage"]
    guards = [customer_guard]
    dependencies = {"customer_id": Provide(provide_customer_id)}

    @get("/questionnaires/{department_id:int}", summary="The department's pre-triage questionnaire")
    async def questionnaire(self, db: Db, department_id: int) -> QuestionnaireOut:
        async def work(conn: BaseDBAsyncClient):
            await service.get_department(conn, department_id, active_only=True)
            return QuestionnaireOut.of(await service.active_questionnaire(conn, department_id))

        return await db.run(work)

    @post("/", summary="Submit the pre-triage form: suggested department, whether a doctor reviews first")
    async def submit(self, db: Db, customer_id: int, data: TriageCreate) -> TriageResult:
        async def work(conn: BaseDBAsyncClient):
            submission = await service.submit_triage(
                conn, customer_id=customer_id, concerns=data.concerns, answers=dict(data.answers),
                department_id=data.department_id,
            )
            suggested = await service.get_department(conn, submission.suggested_department_id)
            content = await service.read_triage(conn, submission)
            return submission, suggested, content

        submission, suggested, content = await db.run(work)
        return TriageResult(
            id=submission.id, department_id=submission.department_id, suggested_department_id=suggested.id,
            suggested_department_name=suggested.name, needs_doctor_review=submission.needs_review,
            flagged=content.flags, created_at=submission.created_at,
        )

    @get("/{triage_id:int}", summary="One of my pre-triage forms")
    async def detail(self, db: Db, customer_id: int, triage_id: int) -> TriageDetail:
        async def work(conn: BaseDBAsyncClient):
            submission = await service.get_triage(conn, triage_id, customer_id=customer_id)
            return TriageDetail.of((await service.read_triages(conn, [submission]))[submission.id])

        return await db.run(work)


class CustomerBookingController(Controller):
    path = "/app/bookings"
    tags = ["customer: booking"]
    guards = [customer_guard]
    dependencies = {"customer_id": Provide(provide_customer_id)}

    @get("/", summary="My bookings, latest first")
    async def list_bookings(
        self, db: Db, customer_id: int, limit: Limit, offset: Offset, status: BookingStatus | None = None
    ) -> BookingPage:
        async def work(conn: BaseDBAsyncClient):
            total, rows = await service.customer_bookings(conn, customer_id, status=status, limit=limit, offset=offset)
            zones = await service.branch_zones(conn)
            return total, rows, zones

        total, rows, zones = await db.run(work)
        return BookingPage(total=total, limit=limit, offset=offset, items=[views.booking_out(b, zones) for b in rows])

    @post("/", summary="Book a seat (refusals: slot_full, too_late, already_booked)",
          opt={ERASURE_CHECKED_BY_WORK: True})  # bookings.book's customer lock checks it
    async def create(self, db: Db, customer_id: int, data: BookingCreate) -> BookingOut:
        async def work(conn: BaseDBAsyncClient) -> BookingOut:
            booking = await service.book(
                conn, customer_id=customer_id, slot_id=data.slot_id, service_id=data.service_id,
                triage_id=data.triage_id, note=data.note, remind=data.remind,
            )
            return await views.one_booking_out(conn, booking)

        return await db.run(work)

    @get("/{booking_id:int}", summary="One of my bookings")
    async def detail(self, db: Db, customer_id: int, booking_id: int) -> BookingOut:
        async def work(conn: BaseDBAsyncClient):
            return await views.one_booking_out(conn, await service.get_customer_booking(conn, customer_id, booking_id))

        return await db.run(work)

    @post("/{booking_id:int}/cancel", status_code=HTTP_200_OK, summary="Cancel (until the cancel window)")
    async def cancel(self, db: Db, customer_id: int, booking_id: int) -> BookingOut:
        async def work(conn: BaseDBAsyncClient) -> BookingOut:
            booking = await service.cancel(conn, customer_id=customer_id, booking_id=booking_id)
            return await views.one_booking_out(conn, booking)

        return await db.run(work)

    @post("/{booking_id:int}/reschedule", status_code=HTTP_200_OK, summary="Move to another slot, atomically")
    async def reschedule(self, db: Db, customer_id: int, booking_id: int, data: Reschedule) -> BookingOut:
        async def work(conn: BaseDBAsyncClient) -> BookingOut:
            booking = await service.reschedule(
                conn, customer_id=customer_id, booking_id=booking_id, slot_id=data.slot_id
            )
            return await views.one_booking_out(conn, booking)

        return await db.run(work)

    @post("/{booking_id:int}/survey", summary="Rate a completed visit (once)")
    async def survey(self, db: Db, customer_id: int, booking_id: int, data: SurveyIn) -> SurveyOut:
        async def work(conn: BaseDBAsyncClient):
            survey = await service.answer_survey(
                conn, customer_id=customer_id, booking_id=booking_id, score=data.score, comment=data.comment
            )
            return SurveyOut.of(survey)

        return await db.run(work)


# ================================================================ staff


ROUTES = [BookingCatalogueController, TriageController, CustomerBookingController]
