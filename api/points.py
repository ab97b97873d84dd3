"""Points routes: daily check-in and the customer's points (/app), consumptions, rules, tiers, adjustments, reports (/admin)."""

from __future__ import annotations

import re
import uuid
from datetime import date
from typing import Annotated, Any

import msgspec
from litestar import Controller, Response
from litestar.openapi import ResponseSpec
from litestar.di import Provide
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from tortoise.backends.base.client import BaseDBAsyncClient

from api.branches import require_branches
from api.deps import Db, Limit, Offset
from api.handlers import get, patch, post
from api.ratelimit import customer_action_limited
from api.security import ERASURE_CHECKED_BY_WORK, customer_guard, provide_customer_id, provide_staff, staff_only
from kernel import clock
from kernel.errors import ValidationFailed
from kernel.identity.models import Customer
from kernel.identity.service import audit
from kernel.identity.tokens import Principal
from points_mall import checkin, ledger, reports, rules, tiers, views
from points_mall import consumption as consumption_service
from points_mall.consumption import refund_consumption
from points_mall.models import ApprovalStatus, ConsumptionApproval
from points_mall.schemas import (
    ConsumptionApprovalPage,
    ConsumptionApprovalView,
    ConsumptionDecision,
    AdjustmentCreate,
    AdjustmentDone,
    Calendar,
    CalendarDay,
    CheckInDone,
    ConsumptionCreate,
    ConsumptionPage,
    ConsumptionRefundCreate,
    ConsumptionView,
    CustomerPoints,
    LedgerPage,
    Liability,
    MakeupCheckIn,
    PointsOverview,
    Rules,
    RulesUpdate,
    StaffLedgerEntry,
    StaffLedgerPage,
    Tier,
    TierChangeView,
    TierCreate,
    TierUpdate,
)

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
IdempotencyKey = Annotated[
    str | None,
    Parameter(header="Idempotency-Key", required=False, max_length=64, pattern=r"^[A-Za-z0-9._:\-]+$"),
]


def _month(value: str | None) -> date:
    if value is None:
        return clock.local_today().replace(day=1)
    match = _MONTH.match(value)
    # Years outside 1000..9998 cannot be formatted back or have no following month (date's range ends at 9999).
    if not match or not 1 <= int(match.group(2)) <= 12 or not 1000 <= int(match.group(1)) <= 9998:
        raise ValidationFailed("month must look like 2026-11.", field="month")
    return date(int(match.group(1)), int(match.group(2)), 1)


_CHECK_IN_LIMIT = customer_action_limited("check_in")


class CheckInController(Controller):
    path = "/app/check-ins"
    tags = ["customer: points"]
    guards = [customer_guard]
    dependencies = {"customer_id": Provide(provide_customer_id)}

    @post("/", status_code=HTTP_201_CREATED, summary="Check in for today (签到)", guards=[_CHECK_IN_LIMIT],
          opt={ERASURE_CHECKED_BY_WORK: True})  # checkin.check_in's first statement checks it
    async def check_in(self, db: Db, customer_id: int) -> CheckInDone:
        done = await db.run(checkin.check_in, customer_id)
        return CheckInDone(date=done.local_date, points=done.points, streak=done.streak,
                           day_in_cycle=done.day_in_cycle, tomorrow_points=done.tomorrow_points, balance=done.balance)

    @get("/", summary="The check-in calendar of a month with the current streak")
    async def calendar(
        self, db: Db, customer_id: int, month: Annotated[str | None, Parameter(description="YYYY-MM")] = None
    ) -> Calendar:
        first = _month(month)
        view = await db.run(checkin.calendar, customer_id, first)
        return Calendar(**{**view, "days": [CalendarDay.of(r) for r in view["days"]]})

    @post("/makeup", status_code=HTTP_201_CREATED, summary="Make up a missed day of the current cycle (补签)",
          guards=[_CHECK_IN_LIMIT])
    async def makeup(self, db: Db, customer_id: int, data: MakeupCheckIn) -> CalendarDay:
        row = await db.run(checkin.makeup_check_in, customer_id, data.date)
        return CalendarDay.of(row)


class PointsController(Controller):
    path = "/app/points"
    tags = ["customer: points"]
    guards = [customer_guard]
    dependencies = {"customer_id": Provide(provide_customer_id)}

    @get("/", summary="Spendable, pending and expiring points, tier and progress",
         opt={ERASURE_CHECKED_BY_WORK: True})  # the overview's statement checks it
    async def overview(self, db: Db, customer_id: int) -> PointsOverview:
        # No transaction: on MySQL/MariaDB the customer's state is one statement (one snapshot), shared with the
        # customers asking in the same moment (reports.own_overview).
        state = await db.read(reports.own_overview, customer_id)
        return msgspec.convert(state, PointsOverview, from_attributes=True)

    @get("/ledger", summary="Points history, newest first")
    async def ledger(self, db: Db, customer_id: int, limit: Limit, offset: Offset) -> LedgerPage:
        return await db.read(views.ledger_page, customer_id, limit=limit, offset=offset)


class ConsumptionAdminController(Controller):
    path = "/admin/consumptions"
    tags = ["staff: points"]
    dependencies = {"staff": Provide(provide_staff)}

    @post("/", guards=[staff_only("front_desk")], status_code=HTTP_201_CREATED,
          summary="Record a paid treatment (idempotent on external_ref); above the approval threshold it waits "
                  "for a second staff member (202)",
          responses={202: ResponseSpec(data_container=ConsumptionApprovalView,
                                       description="Above the approval threshold: recorded, earns nothing yet")})
    async def record(self, db: Db, data: ConsumptionCreate, staff: Principal) -> Response[ConsumptionView]:
        async def work(conn: BaseDBAsyncClient) -> Response:
            await views.require_customer(conn, data.customer_id, field="customer_id")
            await require_branches(conn, [data.branch_id], field="branch_id")
            recorded, created = await consumption_service.record_staff_consumption(
                conn, customer_id=data.customer_id, amount_fen=data.amount_fen,
                external_ref=f"front_desk:{data.external_ref}", branch_id=data.branch_id,
                service_id=data.service_id, staff_id=staff.id,
            )
            if isinstance(recorded, ConsumptionApproval):
                if created:  # a retry is audited once: the trail says what happened
                    await audit(conn, staff.id, "points.consumption_submit", "consumption_approval", recorded.id,
                                {"amount_fen": data.amount_fen, "external_ref": data.external_ref,
                                 "customer_id": data.customer_id})
                return Response(msgspec.to_builtins(ConsumptionApprovalView.of(recorded)), status_code=202)
            if created:
                await audit(conn, staff.id, "points.consumption_record", "consumption", recorded.id,
                            {"amount_fen": data.amount_fen, "external_ref": data.external_ref})
            return Response(msgspec.to_builtins(await views.consumption_view(conn, recorded)),
                            status_code=HTTP_201_CREATED)

        return await db.run(work)

    @post("/{consumption_id:int}/refund", guards=[staff_only("front_desk")], status_code=HTTP_200_OK,
          summary="Refund part or all of a consumption; its points are reversed")
    async def refund(self, db: Db, consumption_id: int, data: ConsumptionRefundCreate, staff: Principal) -> ConsumptionView:
        async def work(conn: BaseDBAsyncClient) -> ConsumptionView:
            found = await views.get_consumption(conn, consumption_id)
            consumption = await refund_consumption(
                conn, external_ref=found.external_ref, refunded_fen=data.refunded_fen,
                ref=f"{found.external_ref}:refund:{data.ref}",
            )
            await audit(conn, staff.id, "points.consumption_refund", "consumption", consumption.id,
                        {"refunded_fen": data.refunded_fen, "ref": data.ref})
            return await views.consumption_view(conn, consumption)

        return await db.run(work)

    @get("/", guards=[staff_only("front_desk", "finance")], summary="Consumptions, newest first")
    async def list_consumptions(
        self, db: Db, limit: Limit, offset: Offset, customer_id: int | None = None, branch_id: int | None = None
    ) -> ConsumptionPage:
        return await db.run(views.consumption_page, customer_id=customer_id, branch_id=branch_id, limit=limit,
                            offset=offset)


class PointsAdminController(Controller):
    path = "/admin/points"
    tags = ["staff: points"]
    dependencies = {"staff": Provide(provide_staff)}

    @get("/rules", guards=[staff_only("campaign", "finance")], summary="Check-in table, earn rate, pending days, expiry")
    async def get_rules(self, db: Db) -> Rules:
        async def work(conn: BaseDBAsyncClient):
            return Rules.of(await rules.get_rules(conn))

        return await db.run(work)

    @patch("/rules", guards=[staff_only("campaign")], summary="Change the points rules")
    async def update_rules(self, db: Db, data: RulesUpdate, staff: Principal) -> Rules:
        changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not None}

        async def work(conn: BaseDBAsyncClient):
            updated = await rules.update_rules(conn, staff.id, changes)
            await audit(conn, staff.id, "points.rules_update", "points_rules", updated.id, changes)
            return Rules.of(updated)

        return await db.run(work)

    @get("/tiers", guards=[staff_only("campaign", "finance")], summary="Member tiers")
    async def list_tiers(self, db: Db) -> list[Tier]:
        return await db.read(views.tiers)

    @post("/tiers", guards=[staff_only("campaign")], summary="Create a member tier")
    async def create_tier(self, db: Db, data: TierCreate, staff: Principal) -> Tier:
        fields = msgspec.structs.asdict(data)

        async def work(conn: BaseDBAsyncClient):
            tier = await tiers.create_tier(conn, **fields)
            await audit(conn, staff.id, "points.tier_create", "member_tier", tier.id, _jsonable(fields))
            return Tier.of(tier)

        return await db.run(work)

    @patch("/tiers/{tier_id:int}", guards=[staff_only("campaign")], summary="Change a member tier")
    async def update_tier(self, db: Db, tier_id: int, data: TierUpdate, staff: Principal) -> Tier:
        changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}

        async def work(conn: BaseDBAsyncClient):
            tier = await tiers.update_tier(conn, tier_id, changes)
            await audit(conn, staff.id, "points.tier_update", "member_tier", tier.id, _jsonable(changes))
            return Tier.of(tier)

        return await db.run(work)

    @post("/adjustments", guards=[staff_only("admin")], status_code=HTTP_201_CREATED,
          summary="Add or remove points by hand, with a reason (admin only, audited)")
    async def adjust(self, db: Db, data: AdjustmentCreate, staff: Principal, idempotency_key: IdempotencyKey = None) -> AdjustmentDone:
        ref = f"adjustment:{staff.id}:{idempotency_key or uuid.uuid4().hex}"

        async def work(conn: BaseDBAsyncClient) -> AdjustmentDone:
            entry, balance, created = await ledger.adjust_points(
                conn, customer_id=data.customer_id, points=data.points, ref=ref, reason=f"Adjustment: {data.reason}"
            )
            if created:  # a retried request is answered again but audited once
                await audit(conn, staff.id, "points.adjust", "customer", data.customer_id,
                            {"points": data.points, "reason": data.reason, "ref": ref})
            return AdjustmentDone(entry=StaffLedgerEntry.of(entry), balance=balance)

        return await db.run(work)

    @get("/customers/{customer_id:int}", guards=[staff_only("campaign", "finance", "front_desk")],
         summary="A customer's points, tier and tier history")
    async def customer_points(self, db: Db, customer_id: int) -> CustomerPoints:
        view, changes = await db.run(views.customer_points, customer_id)
        return CustomerPoints(
            customer_id=customer_id,
            overview=msgspec.convert(view, PointsOverview, from_attributes=True),
            tier_changes=[TierChangeView.of(c) for c in changes],
        )

    @get("/customers/{customer_id:int}/ledger", guards=[staff_only("campaign", "finance", "front_desk")],
         summary="A customer's ledger with refs, newest first")
    async def customer_ledger(self, db: Db, customer_id: int, limit: Limit, offset: Offset) -> StaffLedgerPage:
        return await db.read(views.staff_ledger_page, customer_id, limit=limit, offset=offset)

    @get("/liability", guards=[staff_only("finance")], summary="Points outstanding, pending and expiring per month")
    async def liability(self, db: Db) -> Liability:
        async def work(conn: BaseDBAsyncClient):
            return msgspec.convert(await reports.liability(conn), Liability)

        return await db.run(work)


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return msgspec.to_builtins(values)


async def open_points_account(conn: BaseDBAsyncClient, customer: Customer, created: bool, referral_code: str | None,
                              scene: str | None = None) -> None:
    # Accounts are created at first login, so later effects lock an existing row (no gap-lock races).
    if created:
        await ledger.ensure_account(conn, customer.id)


class ConsumptionApprovalController(Controller):
    """Consumptions above the approval threshold: a second staff member approves (or rejects) them."""

    path = "/admin/consumption-approvals"
    tags = ["staff: points"]
    guards = [staff_only("front_desk", "finance")]
    dependencies = {"staff": Provide(provide_staff)}

    @get("/", summary="Consumptions awaiting approval (or decided), newest first")
    async def list_approvals(self, db: Db, limit: Limit, offset: Offset,
                             status: ApprovalStatus | None = None) -> ConsumptionApprovalPage:
        total, rows = await db.run(consumption_service.approval_page, status=status, limit=limit, offset=offset)
        return ConsumptionApprovalPage(total=total, limit=limit, offset=offset,
                                       items=[ConsumptionApprovalView.of(a) for a in rows])

    @post("/{approval_id:int}/approve", status_code=HTTP_200_OK,
          summary="Approve (a member other than the recorder): the consumption earns its points now")
    async def approve(self, db: Db, approval_id: int, staff: Principal, data: ConsumptionDecision | None = None
                      ) -> ConsumptionApprovalView:
        note = data.note if data else ""

        async def work(conn: BaseDBAsyncClient) -> ConsumptionApprovalView:
            approval, consumption = await consumption_service.approve_consumption(
                conn, approval_id, staff_id=staff.id, note=note)
            await audit(conn, staff.id, "points.consumption_approve", "consumption_approval", approval_id,
                        {"amount_fen": approval.amount_fen, "consumption_id": consumption.id,
                         "recorded_by_id": approval.recorded_by_id, "note": note})
            return ConsumptionApprovalView.of(approval)

        return await db.run(work)

    @post("/{approval_id:int}/reject", status_code=HTTP_200_OK,
          summary="Reject (or, by the recorder, withdraw): nothing is earned")
    async def reject(self, db: Db, approval_id: int, staff: Principal, data: ConsumptionDecision | None = None
                     ) -> ConsumptionApprovalView:
        note = data.note if data else ""

        async def work(conn: BaseDBAsyncClient) -> ConsumptionApprovalView:
            approval = await consumption_service.reject_consumption(conn, approval_id, staff_id=staff.id, note=note)
            await audit(conn, staff.id, "points.consumption_reject", "consumption_approval", approval_id,
                        {"amount_fen": approval.amount_fen, "note": note})
            return ConsumptionApprovalView.of(approval)

        return await db.run(work)


ROUTES = [CheckInController, PointsController, ConsumptionAdminController, ConsumptionApprovalController,
          PointsAdminController]
