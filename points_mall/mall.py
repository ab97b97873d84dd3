"""The points mall (积分商城): items, redemption for points (stock, ledger, vouchers in one transaction), cancel, expiry.

Stock is `stock_total` units of which `stock_reserved` are held by live redemptions; reserving is one
conditional UPDATE (`stock_reserved + q <= stock_total`) and its row count decides, so stock never goes
below zero however many customers arrive at once. Each redemption first locks the customer (via the
points account), which serialises one customer's redemptions: limits and balance are checked on fresh data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.functions import Sum

from kernel import clock
from kernel.batch import packed, unpacked
from kernel.cache import SharedAnswerCache
from kernel.errors import DomainError, ValidationFailed
from kernel.identity.service import AccountErased, customer_is_active
from kernel.sql import named_in_list
from kernel.together import Together, reads_may_be_shared
from points_mall.errors import (
    IdempotencyKeyReused,
    InsufficientPoints,
    ItemNotFound,
    LimitReached,
    NotAvailable,
    OutOfStock,
    StockBelowReserved,
    TierRequired,
    VoucherNotCancellable,
    VoucherNotFound,
)
from points_mall.ledger import lock_account, lock_points, reverse_points, spend_points, spendable
from points_mall.models import (
    EntryKind,
    MallItem,
    MallRedemption,
    PointsAccount,
    RedemptionStatus,
    Voucher,
    VoucherStatus,
)
from points_mall.rules import local_midnight, month_bounds
from points_mall.tiers import tier_of
from points_mall.vouchers import cancel_voucher, issue_vouchers, refusal

MALL_SOURCE = "mall_redemption"
_FIRST_YEAR, _LAST_YEAR = 2000, 2999


def _validate_item(fields: dict[str, Any], current: MallItem | None = None) -> None:
    def value(name: str) -> Any:
        return fields[name] if name in fields else getattr(current, name, None)

    if "points_price" in fields and fields["points_price"] < 1:
        raise ValidationFailed("points_price must be at least 1.", field="points_price")
    if "stock_total" in fields and fields["stock_total"] < 0:
        raise ValidationFailed("stock_total cannot be negative.", field="stock_total")
    for name in ("limit_per_customer", "limit_per_month"):
        if fields.get(name) is not None and fields[name] < 1:
            raise ValidationFailed(f"{name} must be at least 1 (or null for no limit).", field=name)
    if "voucher_valid_days" in fields and fields["voucher_valid_days"] < 1:
        raise ValidationFailed("voucher_valid_days must be at least 1.", field="voucher_valid_days")
    for name in ("available_from", "available_until"):
        # Far-off years overflow when converted to UTC for storage; no shelf plan reaches them.
        if fields.get(name) is not None and not _FIRST_YEAR <= fields[name].year <= _LAST_YEAR:
            raise ValidationFailed(f"{name} must fall between {_FIRST_YEAR} and {_LAST_YEAR}.", field=name)
    start, end = value("available_from"), value("available_until")
    if start is not None and end is not None and end <= start:
        raise ValidationFailed("available_until must be after available_from.", field="available_until")


async def create_item(conn: BaseDBAsyncClient, **fields: Any) -> MallItem:
    _validate_item(fields)
    now = clock.now()
    return await MallItem.create(**fields, created_at=now, updated_at=now, using_db=conn)


async def get_item(conn: BaseDBAsyncClient, item_id: int) -> MallItem:
    item = await MallItem.get_or_none(id=item_id, using_db=conn)
    if item is None:
        raise ItemNotFound()
    return item


async def update_item(conn: BaseDBAsyncClient, item_id: int, changes: dict[str, Any]) -> MallItem:
    """Change an item's terms. Past redemptions keep the terms they copied; stock never drops below reserved."""
    item = await get_item(conn, item_id)
    _validate_item(changes, item)
    changes = dict(changes)
    stock_total = changes.pop("stock_total", None)
    now = clock.now()
    if stock_total is not None:
        # Conditional: a redemption reserving a unit at this moment cannot be undercut.
        changed = await MallItem.filter(id=item_id, stock_reserved__lte=stock_total).using_db(conn).update(
            stock_total=stock_total, updated_at=now
        )
        if changed != 1:
            current = await MallItem.filter(id=item_id).using_db(conn).select_for_update().get()
            raise StockBelowReserved(field="stock_total", reserved=current.stock_reserved)
    if changes:
        await MallItem.filter(id=item_id).using_db(conn).update(**changes, updated_at=now)
    return await MallItem.filter(id=item_id).using_db(conn).select_for_update().get()


async def archive_item(conn: BaseDBAsyncClient, item_id: int) -> MallItem:
    await get_item(conn, item_id)
    await MallItem.filter(id=item_id).using_db(conn).update(on_shelf=False, archived=True, updated_at=clock.now())
    return await get_item(conn, item_id)


def is_available(item: MallItem, now: datetime) -> bool:
    if not item.on_shelf or item.archived:
        return False
    if item.available_from is not None and now < item.available_from:
        return False
    return item.available_until is None or now < item.available_until


async def _usage(conn: BaseDBAsyncClient, customer_id: int, item_ids: list[int]) -> tuple[dict[int, int], dict[int, int]]:
    """Units this customer holds per item (all time, and redeemed this calendar month), cancelled ones excluded."""
    if not item_ids:
        return {}, {}
    start, end = month_bounds(clock.local_today())

    async def held(**extra: Any) -> dict[int, int]:
        rows = await MallRedemption.filter(customer_id=customer_id, item_id__in=item_ids, **extra).using_db(
            conn
        ).annotate(q=Sum("quantity"), c=Sum("cancelled_quantity")).group_by("item_id").values_list("item_id", "q", "c")
        return {item_id: int(q or 0) - int(c or 0) for item_id, q, c in rows}

    return await held(), await held(created_at__gte=start, created_at__lt=end)


async def _tier_level(conn: BaseDBAsyncClient, account: PointsAccount) -> int | None:
    tier = await tier_of(conn, account)
    return tier.level if tier is not None and tier.is_active else None


def why_not(
    item: MallItem, *, now: datetime, points: int, tier_level: int | None, held_total: int, held_month: int,
    quantity: int = 1,
) -> list[str]:
    """Every reason this customer cannot redeem `quantity` of the item now (empty: they can)."""
    reasons = []
    if not is_available(item, now):
        reasons.append(NotAvailable.code)
    if item.stock_total - item.stock_reserved < quantity:
        reasons.append(OutOfStock.code)
    if item.min_tier_level is not None and (tier_level is None or tier_level < item.min_tier_level):
        reasons.append(TierRequired.code)
    if (item.limit_per_customer is not None and held_total + quantity > item.limit_per_customer) or (
        item.limit_per_month is not None and held_month + quantity > item.limit_per_month
    ):
        reasons.append(LimitReached.code)
    if points < item.points_price * quantity:
        reasons.append(InsufficientPoints.code)
    return reasons


@dataclass(frozen=True)
class CustomerStanding:
    """What a customer's reasons on the shelf depend on: spendable points, tier level, units held per item."""

    points: int
    tier_level: int | None
    held_total: dict[int, int]
    held_month: dict[int, int]


async def standing_general(conn: BaseDBAsyncClient, customer_id: int, item_ids: list[int]) -> CustomerStanding:
    """The standing read through the ORM and the ledger (every backend; SQLite's path)."""
    account = await PointsAccount.get_or_none(customer_id=customer_id, using_db=conn)
    points = await spendable(conn, customer_id)
    tier_level = await _tier_level(conn, account) if account is not None else None
    held_total, held_month = await _usage(conn, customer_id, item_ids)
    return CustomerStanding(points, tier_level, held_total, held_month)


# The customers' standing in one statement, hence one snapshot (so it may run without a transaction), and one
# JSON column per customer (kernel.batch.packed): the spendable points (the lots `ledger.spendable` sums), the
# active tier's level, whether the customer is still there (not erased: the shelf route leaves its guard's
# check to this), and one [item, units, created this month] per redemption of a shelf item, cancelled units
# left out, which `standings_sql` adds up per item as `_usage` counts them (units created in [month start,
# next month start)). A plain read, not the ledger's locking one: the shelf only shows reasons, and a
# redemption decides again under the customer's lock. Several customers at once: the shelf route reads the
# customers asking in the same moment together (`items_for_customer`).
_STANDINGS = packed(
    "c.id",
    "(SELECT COALESCE(SUM(l.remaining), 0) FROM points_lot l WHERE l.customer_id = c.id AND l.remaining > 0"
    " AND (l.expires_at IS NULL OR l.expires_at > %(now)s))",
    "(SELECT t.level FROM points_account a JOIN points_member_tier t ON t.id = a.tier_id"
    " WHERE a.customer_id = c.id AND t.is_active)",
    "c.deleted_at IS NULL",
    "(SELECT JSON_ARRAYAGG(JSON_ARRAY(r.item_id, r.quantity - r.cancelled_quantity,"
    " r.created_at >= %(month_start)s AND r.created_at < %(month_end)s))"
    " FROM mall_redemption r WHERE r.customer_id = c.id AND r.item_id IN {items})",
) + " FROM customer c WHERE c.id IN {customers}"


async def standings_sql(conn: BaseDBAsyncClient, customer_ids: list[int],
                        item_ids: list[int]) -> dict[int, tuple[CustomerStanding, bool]]:
    """Each found customer's standing (MySQL/MariaDB) and whether they are still there (not erased)."""
    start, end = month_bounds(clock.local_today())
    customers, customer_params = named_in_list("c", customer_ids)
    items, item_params = named_in_list("i", item_ids)
    utc = timezone.utc
    _, rows = await conn.execute_query(_STANDINGS.format(customers=customers, items=items), {  # type: ignore[arg-type]
        "now": clock.now().astimezone(utc), "month_start": start.astimezone(utc), "month_end": end.astimezone(utc),
        **customer_params, **item_params,
    })
    found = {}
    for customer_id, points, tier_level, active, usage in map(unpacked, rows):
        held_total: dict[int, int] = {}
        held_month: dict[int, int] = {}
        for item, units, this_month in usage or ():  # JSON_ARRAYAGG of no rows is NULL
            held_total[item] = held_total.get(item, 0) + int(units)
            if this_month:
                held_month[item] = held_month.get(item, 0) + int(units)
        standing = CustomerStanding(points=int(points), tier_level=None if tier_level is None else int(tier_level),
                                    held_total=held_total, held_month=held_month)
        found[customer_id] = (standing, bool(active))
    return found


_NO_STANDING = CustomerStanding(points=0, tier_level=None, held_total={}, held_month={})


async def standing_sql(conn: BaseDBAsyncClient, customer_id: int, item_ids: list[int], *,
                       active_only: bool = False) -> CustomerStanding:
    """One customer's standing in one statement (MySQL/MariaDB). `active_only`: an erased customer is refused
    (`AccountErased`), checked in the same statement."""
    return _standing_of((await standings_sql(conn, [customer_id], item_ids)).get(customer_id), active_only)


def _standing_of(found: tuple[CustomerStanding, bool] | None, active_only: bool) -> CustomerStanding:
    """The standing read for a customer (with whether they are active), or none; an erased or unknown customer
    is refused when `active_only`."""
    if active_only and not (found and found[1]):
        raise AccountErased()
    return found[0] if found else _NO_STANDING


async def _serve_standings(asks: list[tuple[int, tuple[int, ...]]]) -> list[tuple[CustomerStanding, bool] | None]:
    found = await standings_sql(connections.get("default"), sorted({customer for customer, _ in asks}),
                                sorted({item for _, items in asks for item in items}))
    return [found.get(customer) for customer, _ in asks]


# The shelf route's standings, on MySQL/MariaDB outside a transaction: the customers asking in the same pass of
# the event loop are read by one statement (kernel.together: sent after each of them asked, nothing kept).
_READ_TOGETHER: Together[tuple[int, tuple[int, ...]], tuple[CustomerStanding, bool] | None] = Together(
    _serve_standings, most=100)


async def items_for_customer(
    conn: BaseDBAsyncClient, customer_id: int, items: list[MallItem], *, active_only: bool = False
) -> list[tuple[MallItem, list[str]]]:
    """Each item with this customer's reasons; their standing is read on every call, never from a cache.
    `active_only`: an erased customer is refused (`AccountErased`)."""
    item_ids = [item.id for item in items]
    if conn.capabilities.dialect != "mysql":
        if active_only and not await customer_is_active(customer_id, conn):
            raise AccountErased()
        standing = await standing_general(conn, customer_id, item_ids)
    elif reads_may_be_shared(conn):
        standing = _standing_of(await _READ_TOGETHER.ask((customer_id, tuple(item_ids))), active_only)
    else:
        standing = await standing_sql(conn, customer_id, item_ids, active_only=active_only)
    now = clock.now()
    return [
        (item, why_not(item, now=now, points=standing.points, tier_level=standing.tier_level,
                       held_total=standing.held_total.get(item.id, 0),
                       held_month=standing.held_month.get(item.id, 0)))
        for item in items
    ]


# The shelf is the same for every customer: kept for the stated time of kernel.cache (stock shown may
# lag that long; a redemption decides on the row itself). Availability windows are applied per request.
_SHELF: SharedAnswerCache[list[MallItem]] = SharedAnswerCache("mall.shelf")


async def shelf(conn: BaseDBAsyncClient) -> list[MallItem]:
    async def load() -> list[MallItem]:
        return await MallItem.filter(on_shelf=True, archived=False).using_db(conn).order_by("sort_order", "id")

    now = clock.now()
    return [item for item in await _SHELF.get("shelf", load) if is_available(item, now)]


def voucher_valid_until(item: MallItem) -> datetime:
    """The end of the last valid day, clinic time."""
    last_day = clock.local_today() + timedelta(days=item.voucher_valid_days)
    return local_midnight(last_day)


# The refusal a redemption gets when several reasons hold: the first of these (the batched path uses it too).
_REFUSALS = (NotAvailable, TierRequired, LimitReached, InsufficientPoints, OutOfStock)


def refusal_of(item: MallItem, reasons: list[str]) -> DomainError | None:
    """The error for `why_not`'s reasons (None when there are none)."""
    return next((error(item_id=item.id) for error in _REFUSALS if error.code in reasons), None)


async def redeem(
    conn: BaseDBAsyncClient, *, customer_id: int, item_id: int, quantity: int, idempotency_key: str
) -> tuple[MallRedemption, bool]:
    """Exchange points for `quantity` of an item. Returns (redemption, created).

    One transaction: lock the customer, check the item's terms, spend the points through the ledger,
    create the redemption and its vouchers, and reserve the stock last with a conditional update (so the
    hot item's row lock is held for as short a time as possible). A repeated Idempotency-Key returns
    the first redemption; a refusal leaves everything as it was (the caller's transaction rolls back).
    """
    if quantity < 1:
        raise ValidationFailed("quantity must be at least 1.", field="quantity")
    # First: the reads below see the latest commits. An erased customer is refused here (the route's guard
    # leaves that check to this lock).
    points = await lock_points(conn, customer_id, active_only=True)
    account = points.account
    existing = await MallRedemption.get_or_none(customer_id=customer_id, idempotency_key=idempotency_key,
                                                using_db=conn)
    if existing is not None:
        if existing.item_id != item_id or existing.quantity != quantity:  # type: ignore[attr-defined]
            raise IdempotencyKeyReused(field="Idempotency-Key", redemption_id=existing.id)
        return existing, False
    item = await get_item(conn, item_id)
    now = clock.now()
    held_total, held_month = await _usage(conn, customer_id, [item.id])
    reasons = why_not(
        item, now=now, points=points.spendable, tier_level=await _tier_level(conn, account),
        held_total=held_total.get(item.id, 0), held_month=held_month.get(item.id, 0), quantity=quantity,
    )
    refusal = refusal_of(item, reasons)
    if refusal is not None:
        raise refusal
    price = item.points_price * quantity
    ledger_ref = f"mall:{customer_id}:{idempotency_key}"
    try:
        redemption = await MallRedemption.create(
            customer_id=customer_id, item=item, idempotency_key=idempotency_key, quantity=quantity,
            unit_points=item.points_price, points_spent=price, item_title=item.title, item_kind=item.kind,
            ledger_ref=ledger_ref, created_at=now, using_db=conn,
        )
    except IntegrityError as exc:  # cannot happen while the customer is locked; refuse rather than guess
        raise IdempotencyKeyReused(field="Idempotency-Key") from exc
    # The ledger ref comes from the redemption row just inserted (unique per customer and key), so the
    # ledger need not look it up, nor lock and read again what lock_points read above.
    await spend_points(conn, customer_id=customer_id, points=price, kind=EntryKind.redemption, ref=ledger_ref,
                       reason=f"Mall: {item.title} x{quantity}", locked=points)
    await issue_vouchers(
        conn, customer_id=customer_id, source_type=MALL_SOURCE, source_id=redemption.id, title=item.title,
        quantity=quantity, valid_until=voucher_valid_until(item), branch_ids=item.branch_ids,
        service_id=item.service_id,
    )
    reserved = await MallItem.filter(
        id=item.id, stock_reserved__lte=F("stock_total") - quantity
    ).using_db(conn).update(stock_reserved=F("stock_reserved") + quantity)
    if reserved != 1:
        raise OutOfStock(item_id=item.id)
    return redemption, True


async def _give_back_unit(conn: BaseDBAsyncClient, voucher: Voucher, why: str) -> None:
    """Return one voucher's points and stock unit (the voucher already left `issued` in this transaction)."""
    redemption = await MallRedemption.filter(id=int(voucher.source_id)).using_db(conn).select_for_update().get()
    changed = await MallRedemption.filter(
        id=redemption.id, cancelled_quantity__lt=redemption.quantity
    ).using_db(conn).update(cancelled_quantity=F("cancelled_quantity") + 1)
    if changed != 1:
        raise RuntimeError(f"redemption {redemption.id} has no unit left to cancel")
    if redemption.cancelled_quantity + 1 == redemption.quantity:
        await MallRedemption.filter(id=redemption.id).using_db(conn).update(
            status=RedemptionStatus.cancelled, cancelled_at=clock.now()
        )
    await MallItem.filter(id=redemption.item_id, stock_reserved__gte=1).using_db(conn).update(  # type: ignore[attr-defined]
        stock_reserved=F("stock_reserved") - 1
    )
    await reverse_points(
        conn, original_ref=redemption.ledger_ref, ref=f"mall-return:voucher:{voucher.id}",
        points=redemption.unit_points, reason=f"{why}: {redemption.item_title}",
    )


async def cancel_mall_voucher(conn: BaseDBAsyncClient, *, customer_id: int, voucher_id: int) -> Voucher:
    """The customer gives back an unredeemed mall voucher within its validity: points and stock come back once."""
    await lock_account(conn, customer_id)
    voucher = await Voucher.get_or_none(id=voucher_id, customer_id=customer_id, using_db=conn)
    if voucher is None:
        raise VoucherNotFound()
    if voucher.source_type != MALL_SOURCE:
        raise VoucherNotCancellable("Only mall vouchers can be cancelled here.", source_type=voucher.source_type)
    if not await cancel_voucher(conn, voucher.id, "cancelled by the customer"):
        current = await Voucher.filter(id=voucher.id).using_db(conn).select_for_update().get()
        raise refusal(current, None, clock.now()) or VoucherNotCancellable()
    await _give_back_unit(conn, voucher, "Cancelled")
    return await Voucher.get(id=voucher.id, using_db=conn)


async def cancel_vouchers_of_erased_customer(conn: BaseDBAsyncClient, customer_id: int) -> int:
    """PIPL erasure: every voucher still `issued` is cancelled, so nobody can redeem it at the desk (a voucher
    code is a bearer credential and its owner is gone). A mall voucher gives its stock unit back (and its
    points, to the now anonymous account, which keeps the ledger summing to the balance); a paid group-buy
    voucher's money stays a matter for finance (the order can still be refunded). Returns how many."""
    await lock_account(conn, customer_id)
    issued = await Voucher.filter(customer_id=customer_id, status=VoucherStatus.issued).using_db(conn).order_by(
        "id").select_for_update()
    cancelled = 0
    now = clock.now()
    for voucher in issued:
        changed = await Voucher.filter(id=voucher.id, status=VoucherStatus.issued).using_db(conn).update(
            status=VoucherStatus.cancelled, cancelled_at=now, cancel_reason="customer data erased (PIPL)")
        if changed != 1:
            continue
        cancelled += 1
        if voucher.source_type == MALL_SOURCE:
            await _give_back_unit(conn, voucher, "Erased")
    return cancelled


async def expire_voucher(conn: BaseDBAsyncClient, voucher_id: int, *, return_points: bool) -> bool:
    """Expire one voucher past its date; a mall voucher gives its points and stock back if configured."""
    voucher = await Voucher.get_or_none(id=voucher_id, using_db=conn)
    if voucher is None:
        return False
    if return_points and voucher.source_type == MALL_SOURCE:
        await lock_account(conn, voucher.customer_id)  # type: ignore[attr-defined]
    now = clock.now()
    changed = await Voucher.filter(id=voucher.id, status=VoucherStatus.issued, valid_until__lte=now).using_db(
        conn
    ).update(status=VoucherStatus.expired, expired_at=now)
    if changed != 1:
        return False
    if return_points and voucher.source_type == MALL_SOURCE:
        await _give_back_unit(conn, voucher, "Expired unused")
    return True


async def due_voucher_ids(conn: BaseDBAsyncClient, *, limit: int = 500) -> list[int]:
    rows = await Voucher.filter(status=VoucherStatus.issued, valid_until__lte=clock.now()).using_db(conn).order_by(
        "id"
    ).limit(limit).values_list("id", flat=True)
    return list(rows)
