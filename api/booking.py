"""Booking routes: the catalogue, slots, pre-triage and bookings for customers (/app); schedules,
slots, the triage queue, arrivals, follow-ups and a customer's history for staff (/admin)."""

from __future__ import annotations

from datetime import date
from typing import Annotated
from zoneinfo import ZoneInfo

import msgspec
from litestar import Controller, get, patch, post, put
from litestar.di import Provide
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK
from tortoise.backends.base.client import BaseDBAsyncClient

from api.deps import Db, Limit, Offset
from api.security import customer_guard, provide_customer_id, provide_staff, staff_only
from booking import service
from booking.models import Booking, BookingStatus, FollowUpStatus
from booking.records import QueueEntry as QueueRecord
from booking.schemas import (
    BookingCreate,
    BookingOut,
    BookingPage,
    BranchCreate,
    BranchList,
    BranchOut,
    CustomerBrief,
    CustomerHistory,
    DepartmentCreate,
    DepartmentCreated,
    DepartmentList,
    DepartmentOut,
    ExceptionIn,
    ExceptionOut,
    FollowUpDone,
    FollowUpOut,
    FollowUpPage,
    PractitionerCreate,
    PractitionerList,
    PractitionerOut,
    PublishIn,
    PublishOut,
    QuestionnaireIn,
    QuestionnaireOut,
    QueueEntry,
    Reschedule,
    ScheduleCreate,
    ScheduleList,
    ScheduleOut,
    ServiceCreate,
    ServiceOut,
    SlotList,
    SlotOut,
    SlotUpdate,
    StaffSlotList,
    StaffSlotOut,
    SurveyIn,
    SurveyOut,
    TriageCreate,
    TriageDetail,
    TriageQueue,
    TriageResult,
)
from kernel import clock
from kernel.identity.service import audit
from kernel.identity.tokens import Principal


BranchId = Annotated[int, Parameter(ge=1, description="Branch id")]
DepartmentId = Annotated[int, Parameter(ge=1, description="Department id")]
Day = Annotated[date | None, Parameter(description="Local date in the branch's time zone; default today")]


def _booking_out(booking: Booking, zones: dict[int, ZoneInfo]) -> BookingOut:
    return BookingOut.of(booking, zones.get(booking.branch_id) or clock.clinic_zone())


async def _one_booking_out(conn: BaseDBAsyncClient, booking: Booking) -> BookingOut:
    branch = await service.get_branch(conn, booking.branch_id)
    return BookingOut.of(booking, service.zone_of(branch))


# ================================================================ customers


async def _department_list(db: Db) -> DepartmentList:
    async def work(conn: BaseDBAsyncClient):
        departments = await service.list_departments(conn)
        questionnaires = await service.active_questionnaires(conn)
        services = await service.list_services(conn)
        return departments, questionnaires, services

    departments, questionnaires, services = await db.run(work)
    items = [
        DepartmentOut(
            id=d.id, code=d.code, name=d.name, description=d.description,
            concerns=service.concern_options(questionnaires.get(d.id)),
            has_questionnaire=d.id in questionnaires,
            services=[ServiceOut.of(s) for s in services if s.department_id == d.id],
        )
        for d in departments
    ]
    return DepartmentList(items)


class BookingCatalogueController(Controller):
    path = "/app/booking"
    tags = ["customer: booking"]
    guards = [customer_guard]

    @get("/branches", summary="Branches (院区) that take bookings")
    async def branches(self, db: Db) -> BranchList:
        async def work(conn: BaseDBAsyncClient):
            return BranchList([BranchOut.of(b) for b in await service.list_branches(conn)])

        return await db.run(work)

    @get("/departments", summary="Departments with their concerns and services")
    async def departments(self, db: Db) -> DepartmentList:
        return await _department_list(db)

    @get("/slots", summary="Bookable slots of a local day with the seats left")
    async def slots(
        self, db: Db, branch_id: BranchId, department_id: DepartmentId, date: Day = None,
        practitioner_id: int | None = None,
    ) -> SlotList:
        async def work(conn: BaseDBAsyncClient):
            branch = await service.get_branch(conn, branch_id)
            await service.get_department(conn, department_id, active_only=True)
            zone = service.zone_of(branch)
            day = date or clock.local_today(zone)
            slots = await service.offered_slots(
                conn, branch=branch, department_id=department_id, day=day, practitioner_id=practitioner_id
            )
            return branch, zone, day, slots

        # The hottest read: plain autocommit reads, no BEGIN/COMMIT round trips (nothing is written).
        branch, zone, day, slots = await db.read(work)
        return SlotList(branch.id, department_id, day, branch.timezone, [SlotOut.of(s, zone) for s in slots])


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
        return BookingPage(total=total, limit=limit, offset=offset, items=[_booking_out(b, zones) for b in rows])

    @post("/", summary="Book a seat (refusals: slot_full, too_late, already_booked)")
    async def create(self, db: Db, customer_id: int, data: BookingCreate) -> BookingOut:
        async def work(conn: BaseDBAsyncClient) -> BookingOut:
            booking = await service.book(
                conn, customer_id=customer_id, slot_id=data.slot_id, service_id=data.service_id,
                triage_id=data.triage_id, note=data.note, remind=data.remind,
            )
            return await _one_booking_out(conn, booking)

        return await db.run(work)

    @get("/{booking_id:int}", summary="One of my bookings")
    async def detail(self, db: Db, customer_id: int, booking_id: int) -> BookingOut:
        async def work(conn: BaseDBAsyncClient):
            return await _one_booking_out(conn, await service.get_customer_booking(conn, customer_id, booking_id))

        return await db.run(work)

    @post("/{booking_id:int}/cancel", status_code=HTTP_200_OK, summary="Cancel (until the cancel window)")
    async def cancel(self, db: Db, customer_id: int, booking_id: int) -> BookingOut:
        async def work(conn: BaseDBAsyncClient) -> BookingOut:
            booking = await service.cancel(conn, customer_id=customer_id, booking_id=booking_id)
            return await _one_booking_out(conn, booking)

        return await db.run(work)

    @post("/{booking_id:int}/reschedule", status_code=HTTP_200_OK, summary="Move to another slot, atomically")
    async def reschedule(self, db: Db, customer_id: int, booking_id: int, data: Reschedule) -> BookingOut:
        async def work(conn: BaseDBAsyncClient) -> BookingOut:
            booking = await service.reschedule(
                conn, customer_id=customer_id, booking_id=booking_id, slot_id=data.slot_id
            )
            return await _one_booking_out(conn, booking)

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


class StaffCatalogueController(Controller):
    """The open branches and departments, for every staff member's pickers (the front desk picks its branch)."""

    path = "/admin/catalogue"
    tags = ["staff: booking set-up"]
    guards = [staff_only()]

    @get("/branches", summary="Open branches (any staff member)")
    async def branches(self, db: Db) -> BranchList:
        async def work(conn: BaseDBAsyncClient):
            return BranchList([BranchOut.of(b) for b in await service.list_branches(conn)])

        return await db.run(work)

    @get("/departments", summary="Departments with their services (any staff member)")
    async def departments(self, db: Db) -> DepartmentList:
        return await _department_list(db)


class BookingCatalogueAdminController(Controller):
    """Branches, departments, services, practitioners and questionnaires (clinic set-up: admin)."""

    path = "/admin/booking"
    tags = ["staff: booking set-up"]
    guards = [staff_only("admin")]
    dependencies = {"staff": Provide(provide_staff)}

    @get("/branches", summary="All branches")
    async def branches(self, db: Db) -> BranchList:
        async def work(conn: BaseDBAsyncClient):
            return BranchList([BranchOut.of(b) for b in await service.list_branches(conn, active_only=False)])

        return await db.run(work)

    @post("/branches", summary="Create a branch")
    async def create_branch(self, db: Db, data: BranchCreate, staff: Principal) -> BranchOut:
        async def work(conn: BaseDBAsyncClient):
            branch = await service.create_branch(conn, **msgspec.structs.asdict(data))
            await audit(conn, staff.id, "booking.branch_create", "booking_branch", branch.id, {"code": branch.code})
            return BranchOut.of(branch)

        return await db.run(work)

    @post("/departments", summary="Create a department (科室)")
    async def create_department(self, db: Db, data: DepartmentCreate, staff: Principal) -> DepartmentCreated:
        async def work(conn: BaseDBAsyncClient):
            department = await service.create_department(conn, **msgspec.structs.asdict(data))
            await audit(conn, staff.id, "booking.department_create", "booking_department", department.id,
                        {"code": department.code})
            return DepartmentCreated.of(department)

        return await db.run(work)

    @post("/services", summary="Create a service (项目)")
    async def create_service(self, db: Db, data: ServiceCreate, staff: Principal) -> ServiceOut:
        async def work(conn: BaseDBAsyncClient):
            created = await service.create_service(conn, **msgspec.structs.asdict(data))
            await audit(conn, staff.id, "booking.service_create", "booking_service", created.id,
                        {"name": created.name, "price_fen": created.price_fen})
            return ServiceOut.of(created)

        return await db.run(work)

    @get("/practitioners", summary="Practitioners")
    async def practitioners(self, db: Db, branch_id: int | None = None) -> PractitionerList:
        rows = await db.run(service.list_practitioners, branch_id=branch_id)
        return PractitionerList([PractitionerOut.of(p) for p in rows])

    @post("/practitioners", summary="Create a practitioner")
    async def create_practitioner(self, db: Db, data: PractitionerCreate, staff: Principal) -> PractitionerOut:
        async def work(conn: BaseDBAsyncClient):
            created = await service.create_practitioner(conn, **msgspec.structs.asdict(data))
            await audit(conn, staff.id, "booking.practitioner_create", "booking_practitioner", created.id)
            return PractitionerOut.of(created)

        return await db.run(work)

    @put("/departments/{department_id:int}/questionnaire", status_code=HTTP_200_OK,
         summary="Publish a new version of the department's pre-triage questionnaire")
    async def publish_questionnaire(self, db: Db, department_id: int, data: QuestionnaireIn, staff: Principal) -> QuestionnaireOut:
        questions = [msgspec.to_builtins(q) for q in data.questions]

        async def work(conn: BaseDBAsyncClient):
            questionnaire = await service.publish_questionnaire(
                conn, department_id=department_id, title=data.title, questions=questions
            )
            await audit(conn, staff.id, "booking.questionnaire_publish", "booking_triage_questionnaire",
                        questionnaire.id, {"department_id": department_id, "version": questionnaire.version})
            return QuestionnaireOut.of(questionnaire)

        return await db.run(work)


class ScheduleAdminController(Controller):
    path = "/admin/schedules"
    tags = ["staff: schedules"]
    guards = [staff_only("front_desk")]
    dependencies = {"staff": Provide(provide_staff)}

    @get("/", summary="Schedules")
    async def list_schedules(self, db: Db, branch_id: int | None = None) -> ScheduleList:
        schedules = await db.run(service.list_schedules, branch_id=branch_id)
        return ScheduleList([ScheduleOut.of(s) for s in schedules])

    @post("/", summary="Create a schedule: weekday hours, slot length, capacity")
    async def create(self, db: Db, data: ScheduleCreate, staff: Principal) -> ScheduleOut:
        async def work(conn: BaseDBAsyncClient):
            schedule = await service.create_schedule(
                conn, branch_id=data.branch_id, department_id=data.department_id,
                practitioner_id=data.practitioner_id, slot_minutes=data.slot_minutes, capacity=data.capacity,
                valid_from=data.valid_from, valid_until=data.valid_until,
                hours=[(h.weekday, h.start, h.end) for h in data.hours], name=data.name, created_by=staff.id,
            )
            await audit(conn, staff.id, "booking.schedule_create", "booking_schedule", schedule.id,
                        {"branch_id": data.branch_id, "department_id": data.department_id})
            return ScheduleOut.of(await service.get_schedule_details(conn, schedule.id))

        return await db.run(work)

    @post("/{schedule_id:int}/exceptions", summary="A closed day or extra hours on a date")
    async def add_exception(self, db: Db, schedule_id: int, data: ExceptionIn, staff: Principal) -> ExceptionOut:
        async def work(conn: BaseDBAsyncClient):
            exception, still_booked = await service.add_exception(
                conn, schedule_id, day=data.date, kind=data.kind, start=data.start, end=data.end, reason=data.reason
            )
            await audit(conn, staff.id, "booking.schedule_exception", "booking_schedule", schedule_id,
                        {"date": data.date.isoformat(), "kind": data.kind.value})
            return ExceptionOut.of(exception, still_booked)

        return await db.run(work)

    @post("/{schedule_id:int}/publish", status_code=HTTP_200_OK, summary="Generate the slots of coming days")
    async def publish(self, db: Db, schedule_id: int, data: PublishIn, staff: Principal) -> PublishOut:
        async def work(conn: BaseDBAsyncClient):
            schedule = await service.get_schedule(conn, schedule_id)
            branch = await service.get_branch(conn, schedule.branch_id)
            start = data.from_date or clock.local_today(service.zone_of(branch))
            created = await service.publish_slots(conn, schedule_id, from_date=start, days=data.days)
            await audit(conn, staff.id, "booking.slots_publish", "booking_schedule", schedule_id,
                        {"from_date": start.isoformat(), "days": data.days, "created": created})
            return start, created

        start, created = await db.run(work)
        return PublishOut(schedule_id, start, data.days, created)


class SlotAdminController(Controller):
    path = "/admin/slots"
    tags = ["staff: schedules"]
    guards = [staff_only("front_desk")]
    dependencies = {"staff": Provide(provide_staff)}

    @get("/", summary="A branch's slots of a local day, with seats booked")
    async def list_slots(self, db: Db, branch_id: BranchId, date: Day = None, department_id: int | None = None) -> StaffSlotList:
        async def work(conn: BaseDBAsyncClient):
            branch = await service.get_branch(conn, branch_id)
            zone = service.zone_of(branch)
            day = date or clock.local_today(zone)
            slots = await service.staff_slots(conn, branch_id=branch_id, day=day, department_id=department_id)
            return branch, zone, day, slots

        branch, zone, day, slots = await db.run(work)
        items = [
            StaffSlotOut(**msgspec.structs.asdict(SlotOut.of(s, zone)), booked=s.booked, status=s.status)
            for s in slots
        ]
        return StaffSlotList(branch_id, day, branch.timezone, items)

    @patch("/{slot_id:int}", summary="Change a slot's capacity (never below seats taken) or close it")
    async def update(self, db: Db, slot_id: int, data: SlotUpdate, staff: Principal) -> StaffSlotOut:
        async def work(conn: BaseDBAsyncClient):
            slot = await service.change_slot(conn, slot_id, capacity=data.capacity, status=data.status)
            await audit(conn, staff.id, "booking.slot_update", "booking_slot", slot_id,
                        {k: v for k, v in msgspec.to_builtins(data).items() if v is not None})
            zone = service.zone_of(await service.get_branch(conn, slot.branch_id))
            return slot, zone

        slot, zone = await db.run(work)
        return StaffSlotOut(**msgspec.structs.asdict(SlotOut.of(slot, zone)), booked=slot.booked, status=slot.status)


class TriageQueueController(Controller):
    """The front desk's day: the triage queue (flagged first), arrival, completion, no-show."""

    path = "/admin/bookings"
    tags = ["staff: triage queue"]
    guards = [staff_only("front_desk")]
    dependencies = {"staff": Provide(provide_staff)}

    @get("/", summary="The triage queue of a local day: flagged for review first, then by time")
    async def queue(
        self, db: Db, staff: Principal, limit: Limit, offset: Offset, date: Day = None, branch_id: int | None = None,
        status: BookingStatus | None = None,
    ) -> TriageQueue:
        async def work(conn: BaseDBAsyncClient):
            zones = await service.branch_zones(conn)
            day = date or clock.local_today(zones.get(branch_id) if branch_id else None)
            total, rows = await service.triage_queue(
                conn, day=day, branch_id=branch_id, status=status, limit=limit, offset=offset
            )
            entries = await service.queue_entries(conn, rows)
            # Health answers were shown: keep a trace of who looked (PIPL: sensitive personal data).
            await audit(conn, staff.id, "booking.triage_queue_viewed", "booking_queue", day.isoformat(),
                        {"branch_id": branch_id, "bookings": len(rows)})
            return zones, day, total, entries

        zones, day, total, entries = await db.run(work)
        return TriageQueue(
            total=total, limit=limit, offset=offset, date=day, items=[_queue_entry_out(e, zones) for e in entries]
        )

    async def _transition(self, db: Db, booking_id: int, action: str, staff: Principal) -> BookingOut:
        async def work(conn: BaseDBAsyncClient):
            booking = await service.transition(conn, booking_id, action)
            await audit(conn, staff.id, f"booking.{action}", "booking_booking", booking_id,
                        {"status": booking.status.value})
            return await _one_booking_out(conn, booking)

        return await db.run(work)

    @post("/{booking_id:int}/arrive", status_code=HTTP_200_OK, summary="Mark arrival (到院)")
    async def arrive(self, db: Db, booking_id: int, staff: Principal) -> BookingOut:
        return await self._transition(db, booking_id, "arrive", staff)

    @post("/{booking_id:int}/complete", status_code=HTTP_200_OK, summary="Visit done: follow-ups are planned")
    async def complete(self, db: Db, booking_id: int, staff: Principal) -> BookingOut:
        return await self._transition(db, booking_id, "complete", staff)

    @post("/{booking_id:int}/no-show", status_code=HTTP_200_OK, summary="Mark a no-show")
    async def no_show(self, db: Db, booking_id: int, staff: Principal) -> BookingOut:
        return await self._transition(db, booking_id, "no_show", staff)


def _queue_entry_out(entry: QueueRecord, zones: dict[int, ZoneInfo]) -> QueueEntry:
    customer = entry.customer
    return QueueEntry(
        booking=_booking_out(entry.booking, zones),
        customer=CustomerBrief(entry.booking.customer_id, customer.nickname if customer else "",
                               customer.phone_masked if customer else None),
        department_name=entry.department_name,
        service_name=entry.service_name,
        triage=TriageDetail.of(entry.triage) if entry.triage else None,
    )


class FollowUpAdminController(Controller):
    path = "/admin/follow-ups"
    tags = ["staff: follow-ups"]
    guards = [staff_only("front_desk")]
    dependencies = {"staff": Provide(provide_staff)}

    @get("/", summary="Follow-up calls (回访) to make: due=today (incl. overdue), overdue, or a date")
    async def list_follow_ups(
        self, db: Db, limit: Limit, offset: Offset,
        due: Annotated[str, Parameter(pattern=r"^(today|overdue|\d{4}-\d{2}-\d{2})$")] = "today",
        branch_id: int | None = None, status: FollowUpStatus | None = None,
    ) -> FollowUpPage:
        total, rows = await db.run(
            service.follow_ups, due=due, branch_id=branch_id, status=status, limit=limit, offset=offset
        )
        return FollowUpPage(total=total, limit=limit, offset=offset, items=[FollowUpOut.of(f) for f in rows])

    @post("/{follow_up_id:int}/done", status_code=HTTP_200_OK, summary="Record the call and close the task")
    async def done(self, db: Db, follow_up_id: int, data: FollowUpDone, staff: Principal) -> FollowUpOut:
        async def work(conn: BaseDBAsyncClient):
            task = await service.complete_follow_up(conn, follow_up_id, staff_id=staff.id, note=data.note)
            await audit(conn, staff.id, "booking.follow_up_done", "booking_follow_up", follow_up_id)
            return FollowUpOut.of(task)

        return await db.run(work)


class CustomerBookingHistoryController(Controller):
    """Only `GET /admin/customers/{id}`: other rooms may add their own routes under /admin/customers."""

    path = "/admin/customers"
    tags = ["staff: customers"]
    guards = [staff_only("front_desk")]
    dependencies = {"staff": Provide(provide_staff)}

    @get("/{customer_id:int}", summary="A customer's bookings, pre-triage answers, surveys and follow-ups")
    async def history(self, db: Db, customer_id: int, staff: Principal) -> CustomerHistory:
        async def work(conn: BaseDBAsyncClient):
            record = await service.customer_record(conn, customer_id)
            zones = await service.branch_zones(conn)
            await audit(conn, staff.id, "booking.customer_history_viewed", "customer", customer_id,
                        {"triage_submissions": len(record.triage)})
            return record, zones

        record, zones = await db.run(work)
        customer = record.customer
        return CustomerHistory(
            customer=CustomerBrief(customer.id, customer.nickname, customer.phone_masked),
            bookings=[_booking_out(b, zones) for b in record.bookings],
            triage=[TriageDetail.of(t) for t in record.triage],
            surveys=[SurveyOut.of(s) for s in record.surveys],
            follow_ups=[FollowUpOut.of(t) for t in record.follow_ups],
        )


ROUTES = [
    BookingCatalogueController,
    TriageController,
    CustomerBookingController,
    StaffCatalogueController,
    BookingCatalogueAdminController,
    ScheduleAdminController,
    SlotAdminController,
    TriageQueueController,
    FollowUpAdminController,
    CustomerBookingHistoryController,
]
