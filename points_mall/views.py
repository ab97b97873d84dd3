"""Read side of points and the mall: the pages a customer or staff member reads (ledger, consumptions, vouchers,
redemptions with their vouchers, the item lists, the redemption export's rows) and the lookups staff routes
check before they write.

Functions take a connection (a transaction's, or autocommit reads through `db.read`) and only read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from kernel import clock
from kernel.identity.models import Customer
from points_mall import consumption as consumptions
from points_mall import mall, reports
from points_mall.errors import ConsumptionNotFound, ItemNotFound, PointsCustomerNotFound, RedemptionNotFound
from points_mall.models import (
    Consumption,
    MallItem,
    MallRedemption,
    MemberTier,
    PointsLedgerEntry,
    RedemptionStatus,
    TierChange,
    Voucher,
    VoucherStatus,
)
from points_mall.mall_schemas import (
    MallItemForCustomer,
    MallItemStaffView,
    RedemptionPage,
    RedemptionView,
    VoucherPage,
    VoucherView,
)
from points_mall.schemas import (
    ConsumptionPage,
    ConsumptionView,
    LedgerEntry,
    LedgerPage,
    StaffLedgerEntry,
    StaffLedgerPage,
    Tier,
)

EXPORT_LIMIT = 50_000
EXPORT_HEADER = ["redemption_id", "created_at_local", "customer_id", "customer_nickname", "item_id", "item_title",
                 "item_kind", "quantity", "points_spent", "status", "cancelled_quantity", "vouchers"]


# --- points ------------------------------------------------------------------------------------------

async def ledger_page(conn: BaseDBAsyncClient, customer_id: int, *, limit: int, offset: int) -> LedgerPage:
    """The customer's own points history, newest first."""
    query = PointsLedgerEntry.filter(customer_id=customer_id).using_db(conn)
    total = await query.count()
    rows = await query.order_by("-id").offset(offset).limit(limit)
    return LedgerPage(total=total, limit=limit, offset=offset, items=[LedgerEntry.of(e) for e in rows])


async def staff_ledger_page(conn: BaseDBAsyncClient, customer_id: int, *, limit: int, offset: int) -> StaffLedgerPage:
    """A customer's ledger with its refs, for staff; a customer id that names nobody is 404."""
    if not await Customer.filter(id=customer_id).using_db(conn).exists():
        raise PointsCustomerNotFound()
    query = PointsLedgerEntry.filter(customer_id=customer_id).using_db(conn)
    total = await query.count()
    rows = await query.order_by("-id").offset(offset).limit(limit)
    return StaffLedgerPage(total=total, limit=limit, offset=offset, items=[StaffLedgerEntry.of(e) for e in rows])


async def customer_points(conn: BaseDBAsyncClient, customer_id: int) -> tuple[dict[str, Any], list[TierChange]]:
    """A customer's overview and their latest 50 tier changes, for staff."""
    overview = await reports.overview(conn, customer_id)
    changes = await TierChange.filter(customer_id=customer_id).using_db(conn).order_by("-id").limit(50)
    return overview, changes


async def tiers(conn: BaseDBAsyncClient) -> list[Tier]:
    return [Tier.of(t) for t in await MemberTier.all().using_db(conn).order_by("level")]


async def require_customer(conn: BaseDBAsyncClient, customer_id: int, *, field: str) -> None:
    """Staff record consumptions only for a customer who exists and has not been erased."""
    if not await Customer.filter(id=customer_id, deleted_at=None).using_db(conn).exists():
        raise PointsCustomerNotFound(field=field)


async def get_consumption(conn: BaseDBAsyncClient, consumption_id: int) -> Consumption:
    found = await Consumption.get_or_none(id=consumption_id, using_db=conn)
    if found is None:
        raise ConsumptionNotFound()
    return found


async def consumption_view(conn: BaseDBAsyncClient, consumption: Consumption) -> ConsumptionView:
    statuses = await consumptions.points_statuses(conn, [consumption])
    return ConsumptionView.of(consumption, statuses[consumption.id])


async def consumption_page(
    conn: BaseDBAsyncClient, *, customer_id: int | None, branch_id: int | None, limit: int, offset: int
) -> ConsumptionPage:
    """Consumptions, newest first, each with what became of its points."""
    query = Consumption.all().using_db(conn)
    if customer_id is not None:
        query = query.filter(customer_id=customer_id)
    if branch_id is not None:
        query = query.filter(branch_id=branch_id)
    total = await query.count()
    rows = await query.order_by("-id").offset(offset).limit(limit)
    statuses = await consumptions.points_statuses(conn, rows)
    return ConsumptionPage(total=total, limit=limit, offset=offset,
                           items=[ConsumptionView.of(c, statuses[c.id]) for c in rows])


# --- the mall ----------------------------------------------------------------------------------------

async def vouchers_of(conn: BaseDBAsyncClient, redemption_ids: list[int]) -> dict[int, list[Voucher]]:
    """The vouchers each mall redemption issued, in issue order (one query for all of them)."""
    if not redemption_ids:
        return {}
    rows = await Voucher.filter(
        source_type=mall.MALL_SOURCE, source_id__in=[str(i) for i in redemption_ids]
    ).using_db(conn).order_by("seq")
    found: dict[int, list[Voucher]] = {i: [] for i in redemption_ids}
    for voucher in rows:
        found[int(voucher.source_id)].append(voucher)
    return found


async def redemption_view(conn: BaseDBAsyncClient, redemption: MallRedemption) -> RedemptionView:
    vouchers = await vouchers_of(conn, [redemption.id])
    return RedemptionView.of(redemption, vouchers[redemption.id])


async def get_redemption(conn: BaseDBAsyncClient, redemption_id: int) -> RedemptionView:
    redemption = await MallRedemption.get_or_none(id=redemption_id, using_db=conn)
    if redemption is None:
        raise RedemptionNotFound()
    return await redemption_view(conn, redemption)


async def _redemption_page(conn: BaseDBAsyncClient, query, *, limit: int, offset: int) -> RedemptionPage:
    total = await query.count()
    rows = await query.order_by("-id").offset(offset).limit(limit)
    vouchers = await vouchers_of(conn, [r.id for r in rows])
    return RedemptionPage(total=total, limit=limit, offset=offset,
                          items=[RedemptionView.of(r, vouchers[r.id]) for r in rows])


async def customer_redemptions(conn: BaseDBAsyncClient, customer_id: int, *, limit: int, offset: int) -> RedemptionPage:
    """The customer's own redemptions, newest first."""
    return await _redemption_page(conn, MallRedemption.filter(customer_id=customer_id).using_db(conn),
                                  limit=limit, offset=offset)


async def customer_vouchers(
    conn: BaseDBAsyncClient, customer_id: int, *, status: VoucherStatus | None, limit: int, offset: int
) -> VoucherPage:
    """The customer's own vouchers (mall, group buys, gifts), newest first."""
    query = Voucher.filter(customer_id=customer_id).using_db(conn)
    if status is not None:
        query = query.filter(status=status)
    total = await query.count()
    rows = await query.order_by("-id").offset(offset).limit(limit)
    return VoucherPage(total=total, limit=limit, offset=offset, items=[VoucherView.of(v) for v in rows])


async def shelf_for_customer(conn: BaseDBAsyncClient, customer_id: int) -> list[MallItemForCustomer]:
    """Items on the shelf, each with the reasons this customer cannot redeem it (none: they can). An erased
    customer is refused by the standing's own statement (the route's guard leaves that check to it)."""
    views = await mall.items_for_customer(conn, customer_id, await mall.shelf(conn), active_only=True)
    return [MallItemForCustomer.of(item, reasons) for item, reasons in views]


async def item_for_customer(conn: BaseDBAsyncClient, customer_id: int, item_id: int) -> MallItemForCustomer:
    """One item on the shelf and available now; anything else is 404 to a customer."""
    item = await MallItem.get_or_none(id=item_id, on_shelf=True, archived=False, using_db=conn)
    if item is None or not mall.is_available(item, clock.now()):
        raise ItemNotFound()
    [(item, reasons)] = await mall.items_for_customer(conn, customer_id, [item])
    return MallItemForCustomer.of(item, reasons)


async def staff_items(conn: BaseDBAsyncClient, *, include_archived: bool) -> list[MallItemStaffView]:
    query = MallItem.all() if include_archived else MallItem.filter(archived=False)
    return [MallItemStaffView.of(i) for i in await query.using_db(conn).order_by("sort_order", "id")]


async def voucher_holder(conn: BaseDBAsyncClient, voucher: Voucher) -> Customer:
    """Whose voucher the front desk is looking at."""
    return await Customer.get(id=voucher.customer_id, using_db=conn)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class RedemptionFilters:
    """The filters of the staff redemption list and its export (created_* are instants, `to` exclusive)."""

    item_id: int | None = None
    customer_id: int | None = None
    status: RedemptionStatus | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None

    def query(self, conn: BaseDBAsyncClient):
        query = MallRedemption.all().using_db(conn)
        if self.item_id is not None:
            query = query.filter(item_id=self.item_id)
        if self.customer_id is not None:
            query = query.filter(customer_id=self.customer_id)
        if self.status is not None:
            query = query.filter(status=self.status)
        if self.created_from is not None:
            query = query.filter(created_at__gte=self.created_from)
        if self.created_to is not None:
            query = query.filter(created_at__lt=self.created_to)
        return query


async def redemption_page(
    conn: BaseDBAsyncClient, filters: RedemptionFilters, *, limit: int, offset: int
) -> RedemptionPage:
    return await _redemption_page(conn, filters.query(conn), limit=limit, offset=offset)


async def redemption_export_rows(conn: BaseDBAsyncClient, filters: RedemptionFilters) -> list[list[Any]]:
    """The export's rows, oldest first, header included (at most EXPORT_LIMIT redemptions); times in clinic time."""
    redemptions = await filters.query(conn).order_by("id").limit(EXPORT_LIMIT)
    vouchers = await vouchers_of(conn, [r.id for r in redemptions])
    names = dict(await Customer.filter(id__in={r.customer_id for r in redemptions}).using_db(conn).values_list(  # type: ignore[attr-defined]
        "id", "nickname"))
    zone = clock.clinic_zone()
    rows: list[list[Any]] = [list(EXPORT_HEADER)]
    rows.extend([
        r.id, r.created_at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"), r.customer_id,  # type: ignore[attr-defined]
        names.get(r.customer_id, ""), r.item_id, r.item_title, r.item_kind.value, r.quantity,  # type: ignore[attr-defined]
        r.points_spent, r.status.value, r.cancelled_quantity,
        " ".join(f"{v.code}:{v.status.value}" for v in vouchers[r.id]),
    ] for r in redemptions)
    return rows
