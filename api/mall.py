"""Mall routes: items and redemptions for customers (/app), item CRUD, redemptions, exports and voucher redemption (/admin)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Controller, Response
from litestar.openapi import ResponseSpec
from litestar.di import Provide
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from tortoise.backends.base.client import BaseDBAsyncClient

from api.branches import require_branches
from api.deps import Db, Limit, Offset
from api.handlers import delete, get, patch, post
from api.ratelimit import customer_action_limited
from api.security import ERASURE_CHECKED_BY_WORK, customer_guard, provide_customer_id, provide_staff, staff_only
from kernel import clock, spreadsheets
from kernel.identity.service import audit
from kernel.identity.tokens import Principal
from points_mall import mall, redemption_batches, views
from points_mall.models import RedemptionStatus, Voucher, VoucherStatus
from points_mall.mall_schemas import (
    MallItemCreate,
    MallItemForCustomer,
    MallItemStaffView,
    MallItemUpdate,
    RedeemVoucher,
    RedemptionCreate,
    RedemptionPage,
    RedemptionView,
    VoucherAtDesk,
    VoucherPage,
    VoucherView,
)
from points_mall.vouchers import find_voucher, redeem_voucher, refusal

IdempotencyKey = Annotated[
    str,
    Parameter(header="Idempotency-Key", min_length=8, max_length=64, pattern=r"^[A-Za-z0-9._:\-]+$",
              description="A key the client generates per redemption attempt and repeats on retry"),
]


_REDEMPTION_LIMIT = customer_action_limited("redemption")


class MallController(Controller):
    path = "/app/mall"
    tags = ["customer: mall"]
    guards = [customer_guard]
    dependencies = {"customer_id": Provide(provide_customer_id)}

    @get("/items", summary="Items on the shelf, with whether you can redeem each and why not",
         opt={ERASURE_CHECKED_BY_WORK: True})  # the standing's statement checks it
    async def list_items(self, db: Db, customer_id: int) -> list[MallItemForCustomer]:
        # One statement for the customer, the shelf from the cache: no transaction needed (points_mall/mall.py).
        return await db.read(views.shelf_for_customer, customer_id)

    @get("/items/{item_id:int}", summary="One item")
    async def get_item(self, db: Db, customer_id: int, item_id: int) -> MallItemForCustomer:
        return await db.run(views.item_for_customer, customer_id, item_id)

    @post("/redemptions", status_code=HTTP_201_CREATED, guards=[_REDEMPTION_LIMIT],
          opt={ERASURE_CHECKED_BY_WORK: True},  # the batch's customer lock checks it (active_only)
          summary="Exchange points for an item (send an Idempotency-Key; a retry returns the same redemption)",
          responses={HTTP_200_OK: ResponseSpec(data_container=RedemptionView,
                                               description="A retry with the same Idempotency-Key: the first redemption")})
    async def redeem(
        self, customer_id: int, data: RedemptionCreate, idempotency_key: IdempotencyKey
    ) -> Response[RedemptionView]:
        # Shares a transaction with concurrent requests for the same item (points_mall/redemption_batches.py);
        # answers once that transaction committed.
        done = await redemption_batches.redeem(customer_id=customer_id, item_id=data.item_id,
                                               quantity=data.quantity, idempotency_key=idempotency_key)
        view = RedemptionView.of(done.redemption, done.vouchers)
        return Response(msgspec.to_builtins(view), status_code=HTTP_201_CREATED if done.created else HTTP_200_OK)

    @get("/redemptions", summary="Your redemptions, newest first")
    async def my_redemptions(self, db: Db, customer_id: int, limit: Limit, offset: Offset) -> RedemptionPage:
        return await db.read(views.customer_redemptions, customer_id, limit=limit, offset=offset)


class VoucherController(Controller):
    path = "/app/vouchers"
    tags = ["customer: mall"]
    guards = [customer_guard]
    dependencies = {"customer_id": Provide(provide_customer_id)}

    @get("/", summary="Your vouchers (mall, group buys, gifts) with their status")
    async def my_vouchers(
        self, db: Db, customer_id: int, limit: Limit, offset: Offset, status: VoucherStatus | None = None
    ) -> VoucherPage:
        return await db.read(views.customer_vouchers, customer_id, status=status, limit=limit, offset=offset)

    @post("/{voucher_id:int}/cancel", status_code=HTTP_200_OK,
          summary="Give back an unredeemed mall voucher: its points and stock come back")
    async def cancel(self, db: Db, customer_id: int, voucher_id: int) -> VoucherView:
        voucher = await db.run(
            lambda conn: mall.cancel_mall_voucher(conn, customer_id=customer_id, voucher_id=voucher_id)
        )
        return VoucherView.of(voucher)


class VoucherDeskController(Controller):
    path = "/admin/vouchers"
    tags = ["staff: vouchers"]
    dependencies = {"staff": Provide(provide_staff)}

    @get("/{code:str}", guards=[staff_only("front_desk")], summary="Look a voucher up by its code before redeeming")
    async def look_up(self, db: Db, code: str) -> VoucherAtDesk:
        async def work(conn: BaseDBAsyncClient):
            voucher = await find_voucher(conn, code)
            return voucher, await views.voucher_holder(conn, voucher)

        voucher, customer = await db.run(work)
        problem = refusal(voucher, None, clock.now())
        return VoucherAtDesk(
            voucher=VoucherView.of(voucher), customer_id=customer.id, customer_nickname=customer.nickname,
            customer_phone=customer.phone_masked, redeemable=problem is None,
            refusal=getattr(problem, "code", None), redeemed_branch_id=voucher.redeemed_branch_id,
            redeemed_by_staff_id=voucher.redeemed_by_staff_id,
        )

    @post("/{code:str}/redeem", guards=[staff_only("front_desk")], status_code=HTTP_200_OK,
          summary="Redeem (核销) a voucher at a branch, once")
    async def redeem(self, db: Db, code: str, data: RedeemVoucher, staff: Principal) -> VoucherView:
        async def work(conn: BaseDBAsyncClient) -> Voucher:
            await find_voucher(conn, code)  # an unknown code is 404, whatever the branch
            await require_branches(conn, [data.branch_id], field="branch_id")
            voucher = await redeem_voucher(conn, code=code, branch_id=data.branch_id, staff_id=staff.id)
            await audit(conn, staff.id, "voucher.redeem", "voucher", voucher.id,
                        {"branch_id": data.branch_id, "source_type": voucher.source_type,
                         "source_id": voucher.source_id})
            return voucher

        return VoucherView.of(await db.run(work))


class MallItemAdminController(Controller):
    path = "/admin/mall/items"
    tags = ["staff: mall"]
    guards = [staff_only("campaign")]
    dependencies = {"staff": Provide(provide_staff)}

    @get("/", summary="All items, including those off the shelf")
    async def list_items(self, db: Db, include_archived: bool = False) -> list[MallItemStaffView]:
        return await db.read(views.staff_items, include_archived=include_archived)

    @post("/", summary="Create an item")
    async def create(self, db: Db, data: MallItemCreate, staff: Principal) -> MallItemStaffView:
        fields = msgspec.structs.asdict(data)

        async def work(conn: BaseDBAsyncClient):
            await require_branches(conn, data.branch_ids, field="branch_ids")
            item = await mall.create_item(conn, **fields)
            await audit(conn, staff.id, "mall.item_create", "mall_item", item.id, msgspec.to_builtins(fields))
            return MallItemStaffView.of(item)

        return await db.run(work)

    @get("/{item_id:int}", summary="One item")
    async def get_one(self, db: Db, item_id: int) -> MallItemStaffView:
        async def work(conn: BaseDBAsyncClient):
            return MallItemStaffView.of(await mall.get_item(conn, item_id))

        return await db.run(work)

    @patch("/{item_id:int}", summary="Change an item (past redemptions keep their terms)")
    async def update(self, db: Db, item_id: int, data: MallItemUpdate, staff: Principal) -> MallItemStaffView:
        changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}

        async def work(conn: BaseDBAsyncClient):
            await require_branches(conn, changes.get("branch_ids"), field="branch_ids")
            item = await mall.update_item(conn, item_id, changes)
            await audit(conn, staff.id, "mall.item_update", "mall_item", item_id, msgspec.to_builtins(changes))
            return MallItemStaffView.of(item)

        return await db.run(work)

    @delete("/{item_id:int}", status_code=HTTP_200_OK, summary="Take an item off the shelf for good (archive)")
    async def archive(self, db: Db, item_id: int, staff: Principal) -> MallItemStaffView:
        async def work(conn: BaseDBAsyncClient):
            item = await mall.archive_item(conn, item_id)
            await audit(conn, staff.id, "mall.item_archive", "mall_item", item_id, {})
            return MallItemStaffView.of(item)

        return await db.run(work)


class MallRedemptionAdminController(Controller):
    path = "/admin/mall/redemptions"
    tags = ["staff: mall"]
    dependencies = {"staff": Provide(provide_staff)}

    @get("/", guards=[staff_only("campaign", "finance", "front_desk")], summary="Redemptions with filters, newest first")
    async def list_redemptions(
        self, db: Db, limit: Limit, offset: Offset, item_id: int | None = None, customer_id: int | None = None,
        status: RedemptionStatus | None = None, created_from: datetime | None = None,
        created_to: datetime | None = None,
    ) -> RedemptionPage:
        filters = views.RedemptionFilters(item_id, customer_id, status, created_from, created_to)
        return await db.read(views.redemption_page, filters, limit=limit, offset=offset)

    @get("/export", guards=[staff_only("campaign", "finance")], summary="Redemptions as CSV (same filters)",
         media_type="text/csv")
    async def export(
        self, db: Db, staff: Principal, item_id: int | None = None, customer_id: int | None = None,
        status: RedemptionStatus | None = None, created_from: datetime | None = None,
        created_to: datetime | None = None,
    ) -> Response:
        filters = views.RedemptionFilters(item_id, customer_id, status, created_from, created_to)
        rows = await db.read(views.redemption_export_rows, filters)

        async def work(conn: BaseDBAsyncClient):
            await audit(conn, staff.id, "mall.redemptions_export", "mall_redemption", "*",
                        {"rows": len(rows) - 1, "item_id": item_id, "customer_id": customer_id,
                         "status": status.value if status else None})

        await db.run(work)
        stamp = clock.local_now().strftime("%Y%m%d-%H%M")
        return Response(
            spreadsheets.to_csv(rows),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="redemptions-{stamp}.csv"'},
        )

    @get("/{redemption_id:int}", guards=[staff_only("campaign", "finance", "front_desk")], summary="One redemption")
    async def get_one(self, db: Db, redemption_id: int) -> RedemptionView:
        return await db.read(views.get_redemption, redemption_id)


ROUTES = [MallController, VoucherController, VoucherDeskController, MallItemAdminController,
          MallRedemptionAdminController]
