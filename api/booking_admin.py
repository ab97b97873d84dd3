"""Booking routes for staff (/admin): the catalogue and clinic set-up, schedules, slots, the triage queue,
arrivals, follow-ups and a customer's history."""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo

import msgspec
from litestar import Controller
from litestar.di import Provide
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK
from tortoise.backends.base.client import BaseDBAsyncClient

from api.booking import BranchId, Day
from api.deps import Db, Limit, Offset
from api.handlers import get, patch, post, put
from api.security import provide_staff, staff_only
from booking import service, views
from booking.models import BookingStatus, FollowUpStatus
from booking.records import QueueEntry as QueueRecord
from booking.schemas import (
    BranchCreate,
    BranchList,
    BranchOut,
    DepartmentCreate,
    DepartmentCreated,
    DepartmentList,
    ExceptionIn,
    ExceptionOut,
    PractitionerCreate,
    PractitionerList,
    PractitionerOut,
    PublishIn,
    PublishOut,
    QuestionnaireIn,
    QuestionnaireOut,
    ScheduleCreate,
    ScheduleList,
    ScheduleOut,
    ServiceCreate,
    ServiceOut,
    SlotOut,
    SlotUpdate,
    StaffSlotList,
    StaffSlotOut,
)
from booking.visit_schemas import (
    BookingOut,
    CustomerBrief,
    CustomerHistory,
    FollowUpDone,
    FollowUpOut,
    FollowUpPage,
    QueueEntry,
    SurveyOut,
    TriageDetail,
    TriageQueue,
)
from kernel import clock
from kernel.identity.service import audit
from kernel.identity.tokens import Principal




class StaffCatalogueController(Controller):
    """The open branches and departments, for every staff member's pickers (the front desk picks its branch)."""

    path = "/admin/catalogue"
    tags = ["staff: booking set-up"]
    guards = [staff_only()]

    @get("/branches", summary="Open branches (any staff member)")
    async def branches(self, db: Db) -> BranchList:
        return await db.run(views.branch_list)

    @get("/departments", summary="Departments with their services (any staff member)")
    async def departments(self, db: Db) -> DepartmentList:
        return await db.run(views.department_list)


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
            return await views.one_booking_out(conn, booking)

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
        booking=views.booking_out(entry.booking, zones),
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
            bookings=[views.booking_out(b, zones) for b in record.bookings],
            triage=[TriageDetail.of(t) for t in record.triage],
            surveys=[SurveyOut.of(s) for s in record.surveys],
            follow_ups=[FollowUpOut.of(t) for t in record.follow_ups],
        )


ROUTES = [
    StaffCatalogueController,
    BookingCatalogueAdminController,
    ScheduleAdminController,
    SlotAdminController,
    TriageQueueController,
    FollowUpAdminController,
    CustomerBookingHistoryController,
]
