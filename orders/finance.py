"""Finance views of orders: filtered lists with totals that add up, and the CSV export (对账)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.functions import Count, Sum
from tortoise.queryset import QuerySet

from orders import service
from orders.models import Order, OrderStatus, PaymentEvent, Refund
from orders.schemas import FinanceOrder, FinanceOrderDetail, FinanceTotals, Line, PaymentEventOut, RefundOut
from kernel import clock, spreadsheets
from kernel.errors import ValidationFailed

EXPORT_LIMIT = 100_000


def _local_midnight(day: date, *, field: str, days_after: int = 0) -> datetime:
    # In UTC: the database keeps UTC and a filter value's own zone is not converted for us.
    try:
        day += timedelta(days=days_after)
        return datetime.combine(day, time.min, tzinfo=clock.clinic_zone()).astimezone(timezone.utc)
    except OverflowError:
        # Near 0001-01-01 or 9999-12-31 the bound (in UTC, or the day after) is past what a datetime holds.
        raise ValidationFailed("The date is out of range.", field=field) from None


def filtered(conn: BaseDBAsyncClient, *, status: OrderStatus | None, day_from: date | None,
             day_to: date | None) -> QuerySet[Order]:
    """Orders created between two local dates (both inclusive), optionally of one status."""
    if day_from and day_to and day_from > day_to:
        raise ValidationFailed("'from' must not be after 'to'.", field="from")
    query = Order.all().using_db(conn)
    if status is not None:
        query = query.filter(status=status)
    if day_from is not None:
        query = query.filter(created_at__gte=_local_midnight(day_from, field="from"))
    if day_to is not None:
        query = query.filter(created_at__lt=_local_midnight(day_to, field="to", days_after=1))
    return query


def row_of(order: Order) -> FinanceOrder:
    return FinanceOrder(
        id=order.id, out_trade_no=order.out_trade_no, transaction_id=order.transaction_id,
        customer_id=order.customer_id, description=order.description, status=order.status,
        total_fen=order.total_fen, paid_fen=order.paid_fen, refunded_fen=order.refunded_fen,
        net_fen=order.paid_fen - order.refunded_fen, created_at=order.created_at, paid_at=order.paid_at,
    )


async def order_detail(conn: BaseDBAsyncClient, order_id: int) -> FinanceOrderDetail:
    """An order with its lines, its refunds and every payment event recorded for it."""
    order = await service.get_order(conn, order_id)
    lines = await service.lines_of(conn, order_id)
    refunds = await Refund.filter(order_id=order_id).using_db(conn).order_by("id")
    events = await PaymentEvent.filter(out_trade_no=order.out_trade_no).using_db(conn).order_by("id")
    return FinanceOrderDetail(order=row_of(order), lines=[Line.of(x) for x in lines],
                              refunds=[RefundOut.of(r) for r in refunds], events=[PaymentEventOut.of(e) for e in events])


async def totals(query: QuerySet[Order]) -> FinanceTotals:
    rows = await query.annotate(
        n=Count("id"), total=Sum("total_fen"), paid=Sum("paid_fen"), refunded=Sum("refunded_fen")
    ).values("n", "total", "paid", "refunded")
    row = rows[0] if rows else {}
    # SUM over no rows is NULL; MySQL returns DECIMAL for SUM of integers: both become int here.
    paid = int(row.get("paid") or 0)
    refunded = int(row.get("refunded") or 0)
    return FinanceTotals(orders=int(row.get("n") or 0), total_fen=int(row.get("total") or 0), paid_fen=paid,
                         refunded_fen=refunded, net_fen=paid - refunded)


CSV_COLUMNS = ["order_id", "out_trade_no", "transaction_id", "customer_id", "status", "created_at", "paid_at",
               "total_fen", "paid_fen", "refunded_fen", "net_fen"]


async def export_csv(query: QuerySet[Order]) -> bytes:
    """One row per order, then a TOTAL row equal to the column sums (finance checks it against WeChat's bill)."""
    zone = clock.clinic_zone()
    rows: list[list[object]] = [CSV_COLUMNS]
    sums = {"total_fen": 0, "paid_fen": 0, "refunded_fen": 0, "net_fen": 0}
    for order in await query.order_by("id").limit(EXPORT_LIMIT):
        row = row_of(order)
        for key in sums:
            sums[key] += getattr(row, key)
        rows.append([
            row.id, row.out_trade_no, row.transaction_id or "", row.customer_id, row.status.value,
            row.created_at.astimezone(zone).isoformat(timespec="seconds"),
            row.paid_at.astimezone(zone).isoformat(timespec="seconds") if row.paid_at else "",
            row.total_fen, row.paid_fen, row.refunded_fen, row.net_fen,
        ])
    rows.append(["TOTAL", len(rows) - 1, "", "", "", "", "", sums["total_fen"], sums["paid_fen"],
                 sums["refunded_fen"], sums["net_fen"]])
    return spreadsheets.to_csv(rows)
