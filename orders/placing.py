"""Placing orders and reading them: an order with its lines and its payment window, the customer's and
staff's lookups, the row lock that serialises one order's changes.

Every function takes the caller's connection and never commits.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from orders.errors import OrderNotFound
from orders.hooks import line_kind
from orders.models import Order, OrderLine, OrderStatus
from kernel import clock
from kernel.batch import Batch, SessionId
from kernel.errors import ValidationFailed
from kernel.outbox import add_to_outbox, enqueue
from kernel.rows import QueuedRow, RowInsert
from kernel.settings import get_settings


# The amount columns are signed 32-bit INT (about 21.47 million yuan): a larger total is refused, not overflowed.
MAX_ORDER_FEN = 2**31 - 1


@dataclass(frozen=True)
class LineSpec:
    kind: str
    title: str
    quantity: int
    unit_price_fen: int
    ref_id: int | None = None


def new_out_trade_no() -> str:
    # 商户订单号: date for humans reading statements, random for uniqueness without a round trip.
    return "CO" + clock.local_today().strftime("%y%m%d") + secrets.token_hex(8).upper()


def payment_window_end(latest: datetime | None = None) -> datetime:
    end = clock.now() + timedelta(minutes=get_settings().pay.payment_window_minutes)
    return min(end, latest) if latest is not None else end


def _order_rows(
    customer_id: int, description: str, lines: list[LineSpec], pay_by: datetime | None, split: dict[str, Any] | None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The order's values and its lines' (without their order id), after the checks every order passes."""
    if not lines:
        raise ValidationFailed("An order needs at least one line.", field="lines")
    for line in lines:
        line_kind(line.kind)  # a kind no room registered is refused before anything is sold
        if line.quantity < 1:
            raise ValidationFailed("Quantity must be at least 1.", field="quantity")
        if line.unit_price_fen < 1:
            raise ValidationFailed("A price must be at least 1 fen.", field="unit_price_fen")
    total = sum(line.quantity * line.unit_price_fen for line in lines)
    if total > MAX_ORDER_FEN:
        raise ValidationFailed("The order total is too large for one order.", field="quantity",
                               max_total_fen=MAX_ORDER_FEN)
    values = dict(customer_id=customer_id, out_trade_no=new_out_trade_no(), description=description[:127],
                  total_fen=total, expires_at=payment_window_end(pay_by), created_at=clock.now(), **(split or {}))
    line_values = [
        dict(kind=line.kind, ref_id=line.ref_id, title=line.title[:127], quantity=line.quantity,
             unit_price_fen=line.unit_price_fen, amount_fen=line.quantity * line.unit_price_fen)
        for line in lines
    ]
    return values, line_values


# Closes the order when its window ends unless it was paid; the reconciliation cron is the safety net.
CLOSE_UNPAID_JOB = "orders.close_unpaid"


async def create_order(
    conn: BaseDBAsyncClient,
    *,
    customer_id: int,
    description: str,
    lines: list[LineSpec],
    pay_by: datetime | None = None,
    split: dict[str, Any] | None = None,
) -> Order:
    """A pending order; `pay_by` caps the payment window (e.g. a group's deadline), `split` holds a
    checkout's columns (how the total is paid, its Idempotency-Key), written with the order itself."""
    values, line_values = _order_rows(customer_id, description, lines, pay_by, split)
    # Two statements of parameterised SQL on MySQL/MariaDB (a join places an order per request; the ORM's
    # create and bulk_create were a tenth of its server CPU).
    order = await _ORDER_ROW.insert(conn, **values)
    await _LINE_ROW.insert_many(conn, [{**line, "order_id": order.id} for line in line_values])
    await enqueue(conn, CLOSE_UNPAID_JOB, order.id, run_at=order.expires_at)
    return order


def add_order(
    batch: Batch, *, customer_id: int, description: str, lines: list[LineSpec], pay_by: datetime | None = None,
) -> tuple[SessionId, QueuedRow[Order]]:
    """`create_order`'s statements queued in a batch (MySQL/MariaDB): the order, its lines and its close job.
    Returns the order's id as later statements of the batch can use it, and the queued order (`saved()`
    once the batch was sent)."""
    values, line_values = _order_rows(customer_id, description, lines, pay_by, None)
    order_id = SessionId("order_id")
    queued = _ORDER_ROW.add(batch, keep_id=order_id, **values)
    _LINE_ROW.add_many(batch, [{**line, "order_id": order_id} for line in line_values])
    add_to_outbox(batch, CLOSE_UNPAID_JOB, order_id, run_at=values["expires_at"])
    return order_id, queued


_ORDER_ROW = RowInsert(Order)
_LINE_ROW = RowInsert(OrderLine)


async def get_order(conn: BaseDBAsyncClient, order_id: int) -> Order:
    order = await Order.get_or_none(id=order_id).using_db(conn)
    if order is None:
        raise OrderNotFound(order_id=order_id)
    return order


async def get_customer_order(conn: BaseDBAsyncClient, customer_id: int, order_id: int) -> Order:
    # Another customer's order is indistinguishable from a missing one.
    order = await Order.get_or_none(id=order_id, customer_id=customer_id).using_db(conn)
    if order is None:
        raise OrderNotFound(order_id=order_id)
    return order


async def get_customer_order_by_trade_no(conn: BaseDBAsyncClient, customer_id: int, out_trade_no: str) -> Order:
    # Longer than WeChat Pay's 32 characters is no order of ours (and Tortoise refuses to compare it).
    order = None
    if len(out_trade_no) <= 32:
        order = await Order.get_or_none(out_trade_no=out_trade_no, customer_id=customer_id).using_db(conn)
    if order is None:
        raise OrderNotFound(out_trade_no=out_trade_no)
    return order


async def lines_of(conn: BaseDBAsyncClient, order_id: int) -> list[OrderLine]:
    return await OrderLine.filter(order_id=order_id).using_db(conn).order_by("id")


async def customer_orders(
    conn: BaseDBAsyncClient, customer_id: int, *, status: OrderStatus | None, limit: int, offset: int
) -> tuple[int, list[tuple[Order, list[OrderLine]]]]:
    """A page of the customer's orders, newest first, each with its lines (one query for all the lines)."""
    query = Order.filter(customer_id=customer_id).using_db(conn)
    if status is not None:
        query = query.filter(status=status)
    total = await query.count()
    orders = await query.order_by("-id").offset(offset).limit(limit)
    lines: dict[int, list[OrderLine]] = {order.id: [] for order in orders}
    if orders:
        for line in await OrderLine.filter(order_id__in=list(lines)).using_db(conn).order_by("id"):
            lines[line.order_id].append(line)
    return total, [(order, lines[order.id]) for order in orders]


async def lock_order(
    conn: BaseDBAsyncClient, *, order_id: int | None = None, out_trade_no: str | None = None
) -> None:
    """Lock the order row as a transaction's first statement, so the transaction's plain reads see what the
    previous holder committed (the paid-order job's consumption) rather than a snapshot taken before it."""
    query = Order.filter(id=order_id) if order_id is not None else Order.filter(out_trade_no=out_trade_no)
    await query.using_db(conn).select_for_update().first()


async def record_prepay(conn: BaseDBAsyncClient, order_id: int, prepay_id: str) -> None:
    await Order.filter(id=order_id, prepay_id=None).using_db(conn).update(prepay_id=prepay_id)
