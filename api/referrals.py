"""Referral routes: the customer's code and friends (/app), programs, review and settlement (/admin)."""

from __future__ import annotations

import base64
from typing import Any, Literal

import structlog
from litestar import Controller, Response
from litestar.datastructures import State
from litestar.di import Provide
from litestar.status_codes import HTTP_200_OK
from redis.exceptions import RedisError
from tortoise.backends.base.client import BaseDBAsyncClient

from api.deps import Db, Limit, Offset
from api.handlers import get, patch, post
from api.security import customer_guard, provide_customer_id, provide_staff, staff_only
from campaigns.referrals import service, settlement, views
from campaigns.referrals.binding import bind_at_login
from campaigns.referrals.models import AttemptOutcome, BatchStatus, RefusalReason, RewardStatus
from campaigns.referrals.schemas import (
    Attempt,
    AttemptPage,
    Batch,
    BatchCreate,
    BatchPage,
    BatchReview,
    Binding,
    BindingPage,
    FriendOut,
    MarkPaid,
    MyReferral,
    MyReferrals,
    Program,
    ProgramCreate,
    ProgramPage,
    ProgramSummary,
    ProgramUpdate,
    Reward,
    RewardDecision,
    RewardPage,
    Totals,
)
from kernel import spreadsheets
from kernel.errors import TooManyRequests, UpstreamUnavailable
from kernel.identity.service import audit, get_customer
from kernel.identity.tokens import Principal

log = structlog.get_logger(__name__)

# The page a shared link or QR code opens; WeChat passes the QR's scene (the code) to it.
SHARE_PAGE = "pages/index/index"
_QR_CACHE_SECONDS = 7 * 24 * 3600
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def share_path(code: str) -> str:
    return f"/{SHARE_PAGE}?referral_code={code}"


async def _qr_png(state: State, code: str) -> bytes | None:
    """The wxacode for a code, cached in Redis (WeChat rate-limits getUnlimited). Never inside a transaction."""
    key = f"referrals:qr:{code}"
    try:
        cached = await state.redis.get(key)
        if cached:
            return cached
    except (RedisError, OSError):
        cached = None
    try:
        image = await state.miniprogram.unlimited_qr_code(scene=code, page=SHARE_PAGE)
    except (UpstreamUnavailable, TooManyRequests) as exc:
        # The code and the share path still work; the QR can be fetched again later.
        log.warning("referrals.qr_unavailable", error=exc.code)
        return None
    try:
        await state.redis.set(key, image, ex=_QR_CACHE_SECONDS)
    except (RedisError, OSError):
        pass
    return image


class MyReferralController(Controller):
    path = "/app/referrals"
    tags = ["customer: referrals"]
    guards = [customer_guard]
    dependencies = {"customer_id": Provide(provide_customer_id)}

    @get("/me", summary="My referral code, share path and mini-program QR code")
    async def me(self, db: Db, customer_id: int, state: State) -> MyReferral:
        async def work(conn: BaseDBAsyncClient):
            customer = await get_customer(conn, customer_id)
            program = await service.active_program(conn)
            return customer, program

        customer, program = await db.run(work)
        # The WeChat call happens after the transaction closed.
        image = await _qr_png(state, customer.referral_code)
        summary = None
        if program is not None:
            summary = ProgramSummary(**{name: getattr(program, name) for name in ProgramSummary.__struct_fields__})
        return MyReferral(
            referral_code=customer.referral_code,
            share_path=share_path(customer.referral_code),
            qr_code_png_base64=base64.b64encode(image).decode() if image else None,
            program=summary,
        )

    @get("/", summary="Friends I invited (masked names), their status and my rewards")
    async def friends(self, db: Db, customer_id: int, limit: Limit, offset: Offset) -> MyReferrals:
        async def work(conn: BaseDBAsyncClient):
            totals = await views.reward_totals(conn, customer_id)
            total, friends = await views.friends_of(conn, customer_id, limit=limit, offset=offset)
            return totals, total, friends

        totals, total, friends = await db.run(work)
        return MyReferrals(
            total=total, limit=limit, offset=offset, totals=Totals.of(totals),
            items=[FriendOut.of(f) for f in friends],
        )


class ReferralProgramController(Controller):
    path = "/admin/referral-programs"
    tags = ["staff: referrals"]
    guards = [staff_only("campaign")]
    dependencies = {"staff": Provide(provide_staff)}

    @get("/", summary="List referral programs")
    async def list_programs(self, db: Db, limit: Limit, offset: Offset) -> ProgramPage:
        total, rows = await db.run(views.programs, limit=limit, offset=offset)
        return ProgramPage(total=total, limit=limit, offset=offset, items=[Program.of(p) for p in rows])

    @post("/", summary="Create a referral program")
    async def create(self, db: Db, data: ProgramCreate, staff: Principal) -> Program:
        values = {name: getattr(data, name) for name in data.__struct_fields__}

        async def work(conn: BaseDBAsyncClient):
            program = await service.create_program(conn, values)
            await audit(conn, staff.id, "referral_program.create", "referral_program", program.id,
                        _jsonable(values))
            return Program.of(program)

        return await db.run(work)

    @get("/{program_id:int}", summary="One referral program")
    async def get_one(self, db: Db, program_id: int) -> Program:
        async def work(conn: BaseDBAsyncClient):
            return Program.of(await service.get_program(conn, program_id))

        return await db.run(work)

    @patch("/{program_id:int}", summary="Change a referral program (activate, deactivate, rules)")
    async def update(self, db: Db, program_id: int, data: ProgramUpdate, staff: Principal) -> Program:
        changes = data.changes()

        async def work(conn: BaseDBAsyncClient):
            program = await service.update_program(conn, program_id, changes)
            await audit(conn, staff.id, "referral_program.update", "referral_program", program_id,
                        _jsonable(changes))
            return Program.of(program)

        return await db.run(work)


class ReferralReviewController(Controller):
    path = "/admin/referrals"
    tags = ["staff: referrals"]
    guards = [staff_only("campaign", "finance")]
    dependencies = {"staff": Provide(provide_staff)}

    @get("/attempts", summary="Binding log: every code used at login, with the refusal reason")
    async def attempts(
        self, db: Db, limit: Limit, offset: Offset, outcome: AttemptOutcome | None = None,
        reason: RefusalReason | None = None, referrer_id: int | None = None,
    ) -> AttemptPage:
        total, rows = await db.run(
            views.attempts, outcome=outcome, reason=reason, referrer_id=referrer_id, limit=limit, offset=offset
        )
        return AttemptPage(total=total, limit=limit, offset=offset, items=[Attempt.of(a) for a in rows])

    @get("/bindings", summary="Referrals (bindings); flagged=true lists those with fraud signals")
    async def bindings(
        self, db: Db, limit: Limit, offset: Offset, flagged: bool | None = None, referrer_id: int | None = None
    ) -> BindingPage:
        total, rows = await db.run(
            views.bindings, flagged=flagged, referrer_id=referrer_id, limit=limit, offset=offset
        )
        return BindingPage(total=total, limit=limit, offset=offset, items=[Binding.of(b) for b in rows])

    @get("/rewards", summary="Rewards; status=held is the review queue (over cap, fraud signals)")
    async def rewards(
        self, db: Db, limit: Limit, offset: Offset, status: RewardStatus | None = None,
        beneficiary_id: int | None = None, batch_id: int | None = None,
    ) -> RewardPage:
        total, rows = await db.run(
            views.rewards, status=status, beneficiary_id=beneficiary_id, batch_id=batch_id, limit=limit, offset=offset
        )
        return RewardPage(total=total, limit=limit, offset=offset, items=[Reward.of(r) for r in rows])

    @post("/rewards/{reward_id:int}/approve", status_code=HTTP_200_OK, summary="Release a held reward")
    async def approve(self, db: Db, reward_id: int, data: RewardDecision, staff: Principal) -> Reward:
        async def work(conn: BaseDBAsyncClient):
            reward = await service.approve_held(conn, reward_id, staff_id=staff.id, reason=data.reason)
            await audit(conn, staff.id, "referral_reward.approve", "referral_reward", reward_id,
                        {"reason": data.reason, "status": reward.status.value})
            return Reward.of(reward)

        return await db.run(work)

    @post("/rewards/{reward_id:int}/void", status_code=HTTP_200_OK, summary="Void a held reward")
    async def void(self, db: Db, reward_id: int, data: RewardDecision, staff: Principal) -> Reward:
        async def work(conn: BaseDBAsyncClient):
            reward = await service.void_held(conn, reward_id, staff_id=staff.id, reason=data.reason)
            await audit(conn, staff.id, "referral_reward.void", "referral_reward", reward_id, {"reason": data.reason})
            return Reward.of(reward)

        return await db.run(work)


_FINANCE_ONLY = staff_only("finance", include_admin=False)


class SettlementController(Controller):
    path = "/admin/settlements"
    tags = ["staff: finance"]
    guards = [staff_only("finance")]
    dependencies = {"staff": Provide(provide_staff)}

    @get("/", summary="Settlement batches, newest first")
    async def list_batches(self, db: Db, limit: Limit, offset: Offset, status: BatchStatus | None = None) -> BatchPage:
        total, rows = await db.run(views.batches, status=status, limit=limit, offset=offset)
        return BatchPage(total=total, limit=limit, offset=offset, items=[Batch.of(b) for b in rows])

    @post("/", summary="Create a batch of every payable reward up to a date")
    async def create(self, db: Db, data: BatchCreate, staff: Principal) -> Batch:
        async def work(conn: BaseDBAsyncClient) -> Batch:
            batch = await service.create_batch(conn, staff_id=staff.id, up_to=data.up_to, note=data.note)
            await audit(conn, staff.id, "settlement.create", "settlement_batch", batch.id,
                        {"up_to": data.up_to.isoformat(), "total_fen": batch.total_fen,
                         "reward_count": batch.reward_count, "adjustment_count": batch.adjustment_count})
            return Batch.of(batch)

        # Two batches created at once: InnoDB may pick one as a deadlock victim, which runs again.
        return await db.run(work)

    @get("/{batch_id:int}", summary="Review a batch: one line per payee")
    async def review(self, db: Db, batch_id: int) -> BatchReview:
        async def work(conn: BaseDBAsyncClient):
            batch = await service.get_batch(conn, batch_id)
            lines = await service.payee_lines(conn, batch_id)
            return batch, lines

        batch, lines = await db.run(work)
        return BatchReview(batch=Batch.of(batch), lines=lines)

    # The checker steps admit finance only, never admin: separation of duties over convenience (an admin
    # can grant themselves finance, which the audit log records).
    @post("/{batch_id:int}/approve", status_code=HTTP_200_OK, summary="Approve (a different finance user)",
          guards=[_FINANCE_ONLY])
    async def approve(self, db: Db, batch_id: int, staff: Principal) -> Batch:
        async def work(conn: BaseDBAsyncClient):
            batch = await service.approve_batch(conn, batch_id, staff_id=staff.id)
            await audit(conn, staff.id, "settlement.approve", "settlement_batch", batch_id,
                        {"total_fen": batch.total_fen})
            return Batch.of(batch)

        return await db.run(work)

    @post("/{batch_id:int}/mark-paid", status_code=HTTP_200_OK, guards=[_FINANCE_ONLY],
          summary="Record the external payment reference (a finance user other than the maker)")
    async def mark_paid(self, db: Db, batch_id: int, data: MarkPaid, staff: Principal) -> Batch:
        async def work(conn: BaseDBAsyncClient):
            batch = await service.mark_paid(conn, batch_id, staff_id=staff.id, external_ref=data.external_ref)
            await audit(conn, staff.id, "settlement.mark_paid", "settlement_batch", batch_id,
                        {"external_ref": data.external_ref, "total_fen": batch.total_fen})
            return Batch.of(batch)

        return await db.run(work)

    @post("/{batch_id:int}/cancel", status_code=HTTP_200_OK, summary="Cancel an unpaid batch")
    async def cancel(self, db: Db, batch_id: int, staff: Principal) -> Batch:
        async def work(conn: BaseDBAsyncClient):
            batch = await service.cancel_batch(conn, batch_id, staff_id=staff.id)
            await audit(conn, staff.id, "settlement.cancel", "settlement_batch", batch_id, {})
            return Batch.of(batch)

        return await db.run(work)

    @get("/{batch_id:int}/export", summary="Export a batch as CSV or XLSX (one line per payee, plus totals)",
         media_type="text/csv", opt={"media_types": ("text/csv", XLSX)})
    async def export(self, db: Db, batch_id: int, staff: Principal, format: Literal["csv", "xlsx"] = "csv") -> Response:
        async def work(conn: BaseDBAsyncClient):
            batch = await service.get_batch(conn, batch_id)
            lines = await service.payee_lines(conn, batch_id)
            # Exports carry personal data out of the system: who took one is recorded.
            await audit(conn, staff.id, "settlement.export", "settlement_batch", batch_id,
                        {"format": format, "lines": len(lines), "total_fen": batch.total_fen})
            return batch, lines

        batch, lines = await db.run(work)
        rows = settlement.export_rows(batch, lines)
        if format == "xlsx":
            content = spreadsheets.to_xlsx(rows, sheet_title="settlement")
            media_type = XLSX
        else:
            content = spreadsheets.to_csv(rows)
            media_type = "text/csv"  # Litestar adds "; charset=utf-8" to text/* types
        return Response(
            content,
            media_type=media_type,
            headers={"Content-Disposition": f'attachment; filename="settlement-{batch_id}.{format}"'},
        )


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in values.items()}


async def bind_referral(conn, customer, created: bool, referral_code: str | None, scene: str | None = None) -> None:
    """Login hook: runs inside the login transaction; refusals are recorded, never raised."""
    await bind_at_login(conn, customer, created, referral_code)


ROUTES = [
    MyReferralController,
    ReferralProgramController,
    ReferralReviewController,
    SettlementController,
]
