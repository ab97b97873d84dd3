"""Order rules: create, pay (apply a confirmed payment once), close unpaid, refund; reports for finance.

Every function takes the caller's connection and never commits. State changes are conditional
updates (`WHERE status = ...`) whose affected-row count decides who won; the side effects of a
change are written to the outbox in the same transaction.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F

from orders import partners
from orders.errors import OrderNotFound, RefundKeyReused, RefundNotAllowed, RefundTooLarge
from orders.gateway import RefundResult, TradeState
from orders.hooks import LineOutcome, line_kind
from orders import checkout
from orders.models import (
    MONEY_TAKEN,
    NotificationOutcome,
    Order,
    OrderLine,
    OrderStatus,
    PaymentEvent,
    Refund,
    RefundStatus,
    refundable_fen,
    wechat_amount,
)
from kernel import clock
from kernel.errors import ValidationFailed
from kernel.outbox import enqueue
from kernel.settings import get_settings

log = structlog.get_logger(__name__)

REFUNDABLE = (OrderStatus.paid, OrderStatus.fulfilled, OrderStatus.refunding)
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


def out_refund_no_for(order: Order, reason: str) -> str:
    """One system refund per order and reason: asking twice for the same refund finds the first one."""
    return f"{order.out_trade_no}-{reason}"[:64]


def out_refund_no_for_key(order: Order, idempotency_key: str) -> str:
    # WeChat Pay allows [0-9A-Za-z_-|*@] in 商户退款单号 and the key may hold '.' or ':': use its digest.
    return f"{order.out_trade_no}-K{hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]}"


def payment_window_end(latest: datetime | None = None) -> datetime:
    end = clock.now() + timedelta(minutes=get_settings().pay.payment_window_minutes)
    return min(end, latest) if latest is not None else end


async def create_order(
    conn: BaseDBAsyncClient,
    *,
    customer_id: int,
    description: str,
    lines: list[LineSpec],
    pay_by: datetime | None = None,
) -> Order:
    """A pending order; `pay_by` caps the payment window (e.g. a group's deadline)."""
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
    order = await Order.create(
        customer_id=customer_id,
        out_trade_no=new_out_trade_no(),
        description=description[:127],
        total_fen=total,
        expires_at=payment_window_end(pay_by),
        created_at=clock.now(),
        using_db=conn,
    )
    await OrderLine.bulk_create(
        [
            OrderLine(
                order_id=order.id, kind=line.kind, ref_id=line.ref_id, title=line.title[:127],
                quantity=line.quantity, unit_price_fen=line.unit_price_fen,
                amount_fen=line.quantity * line.unit_price_fen,
            )
            for line in lines
        ],
        using_db=conn,
    )
    # Closes the order when its window ends unless it was paid; the reconciliation cron is the safety net.
    await enqueue(conn, "orders.close_unpaid", order.id, run_at=order.expires_at)
    return order


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


async def _event(
    conn: BaseDBAsyncClient, *, source: str, outcome: NotificationOutcome, notification_id: str = "",
    event_type: str = "", out_trade_no: str = "", out_refund_no: str = "", transaction_id: str = "",
    amount_fen: int | None = None,
) -> None:
    await PaymentEvent.create(
        source=source, outcome=outcome, notification_id=notification_id[:64], event_type=event_type[:48],
        out_trade_no=out_trade_no[:32], out_refund_no=out_refund_no[:64], transaction_id=(transaction_id or "")[:64],
        amount_fen=amount_fen, received_at=clock.now(), using_db=conn,
    )


async def apply_payment(
    conn: BaseDBAsyncClient,
    trade: TradeState,
    *,
    expected_mchid: str,
    expected_appid: str,
    source: str,
    notification_id: str = "",
    event_type: str = "",
) -> NotificationOutcome:
    """Apply a payment the gateway confirmed (notification or query), once.

    Checks merchant, app and amount against the order; the conditional update from
    `pending_payment` is what makes 20 identical notifications apply once.
    """
    record = dict(
        source=source, notification_id=notification_id, event_type=event_type, out_trade_no=trade.out_trade_no,
        transaction_id=trade.transaction_id or "", amount_fen=trade.total_fen,
    )
    order = await Order.get_or_none(out_trade_no=trade.out_trade_no).using_db(conn)
    if order is None:
        outcome = NotificationOutcome.unknown_order
    elif trade.mchid != expected_mchid or trade.appid != expected_appid:
        outcome = NotificationOutcome.merchant_mismatch
    elif trade.trade_state != "SUCCESS" or not trade.transaction_id:
        outcome = NotificationOutcome.not_success
    elif trade.total_fen != wechat_amount(order):
        outcome = NotificationOutcome.amount_mismatch
    else:
        outcome = await _mark_paid(conn, order, trade)
    await _event(conn, outcome=outcome, **record)
    level = log.info if outcome in (NotificationOutcome.applied, NotificationOutcome.duplicate) else log.warning
    level("orders.payment_" + outcome.value, out_trade_no=trade.out_trade_no, source=source,
          order_id=order.id if order else None)
    return outcome


async def _mark_paid(conn: BaseDBAsyncClient, order: Order, trade: TradeState) -> NotificationOutcome:
    now = clock.now()
    won = await Order.filter(id=order.id, status=OrderStatus.pending_payment).using_db(conn).update(
        status=OrderStatus.paid, transaction_id=trade.transaction_id, paid_fen=trade.total_fen, paid_at=now
    )
    if won:
        await _payment_applied(conn, order)
        return NotificationOutcome.applied
    # Someone else changed it first: read the latest committed row (a plain read would see our snapshot).
    current = await Order.filter(id=order.id).using_db(conn).select_for_update().first()
    assert current is not None
    if current.transaction_id == trade.transaction_id:
        return NotificationOutcome.duplicate
    if current.status == OrderStatus.closed and current.transaction_id is None:
        # Paid at WeChat after we gave its hold away: take the money in and send it straight back.
        moved = await Order.filter(id=order.id, status=OrderStatus.closed, transaction_id=None).using_db(conn).update(
            status=OrderStatus.paid, transaction_id=trade.transaction_id, paid_fen=trade.total_fen, paid_at=now
        )
        if moved:
            current = await get_order(conn, order.id)
            await request_refund(conn, current, amount_fen=current.total_fen, reason="paid_after_close",
                                 run_line_hooks=False)
            return NotificationOutcome.paid_after_close
    log.error("orders.second_transaction", order_id=order.id, transaction_id=trade.transaction_id)
    return NotificationOutcome.duplicate


async def _payment_applied(conn: BaseDBAsyncClient, order: Order) -> None:
    await checkout.on_payment_applied(conn, order)
    for line in await lines_of(conn, order.id):
        await line_kind(line.kind).on_payment_applied(conn, order, line)
    await enqueue(conn, "orders.order_paid", order.id)


async def mark_paid_without_gateway(conn: BaseDBAsyncClient, order_id: int) -> bool:
    """An order whose coupon, points and stored value cover it all: paid at once, nothing goes to WeChat Pay."""
    won = await Order.filter(id=order_id, status=OrderStatus.pending_payment, wechat_fen=0).using_db(conn).update(
        status=OrderStatus.paid, paid_fen=0, paid_at=clock.now())
    if won:
        await _payment_applied(conn, await get_order(conn, order_id))
    return bool(won)


async def record_event(conn: BaseDBAsyncClient, *, source: str, outcome: NotificationOutcome, **fields) -> None:
    await _event(conn, source=source, outcome=outcome, **fields)


async def handle_paid_order(conn: BaseDBAsyncClient, order_id: int) -> bool:
    """The side effects of a payment, run once by the `orders.order_paid` job.

    Each line's room acts (a category purchase is fulfilled, a bestie seat is counted towards its
    group); the paid amount counts as consumption for points and referrals.
    """
    claimed = await Order.filter(id=order_id, paid_handled_at=None).using_db(conn).update(paid_handled_at=clock.now())
    if not claimed:
        return False
    order = await get_order(conn, order_id)
    if order.status not in MONEY_TAKEN:
        return False
    lines = await lines_of(conn, order_id)
    if order.refund_reserved_fen >= refundable_fen(order):
        # Finance asked for all of it back before this job ran: nothing is delivered, what the lines hold
        # goes back (a seat, stock), and nothing counts as consumption (no points, no referral).
        await _release_lines(conn, order, lines, clock.now())
        return True
    all_fulfilled = True
    for line in lines:
        outcome = await line_kind(line.kind).on_paid(conn, order, line)
        all_fulfilled = all_fulfilled and order.id in outcome.delivered
        # This order becomes fulfilled below, once every line has answered; other orders at once.
        await follow(conn, outcome, asked_about=order.id)
    consumed = checkout.consumption_fen(order, lines)
    if consumed > 0:
        await partners.record_order_consumption(
            conn, order_id=order.id, customer_id=order.customer_id, amount_fen=consumed
        )
    # A refund confirmed before this job ran had no consumption to take off (`_refund_confirmed` skips an
    # order not handled yet): take it off now, under the refund's own ref, so it applies once either way.
    confirmed = await Refund.filter(order_id=order_id, status=RefundStatus.succeeded).using_db(conn).order_by("id")
    for refund in confirmed:
        refunded = await checkout.refund_consumption_fen(conn, refund, lines) if consumed > 0 else 0
        if refunded > 0:
            await partners.refund_order_consumption(
                conn, order_id=order_id, refunded_fen=refunded, out_refund_no=refund.out_refund_no
            )
    if all_fulfilled:
        await mark_fulfilled(conn, order_id)
    return True


async def mark_fulfilled(conn: BaseDBAsyncClient, order_id: int) -> bool:
    return bool(
        await Order.filter(id=order_id, status=OrderStatus.paid).using_db(conn).update(
            status=OrderStatus.fulfilled, fulfilled_at=clock.now()
        )
    )


async def follow(conn: BaseDBAsyncClient, outcome: LineOutcome, *, asked_about: int | None = None) -> None:
    """Do what a selling room answered (orders/hooks.py): fulfil the orders it delivered and send back the
    money of the orders it gave up, everything left on each. The one place another room's decision moves an
    order; `asked_about` is the order whose paid-order job is running, fulfilled by that job itself."""
    for order_id in outcome.delivered:
        if order_id != asked_about:
            await mark_fulfilled(conn, order_id)
    for ask in outcome.refunds:
        order = await get_order(conn, ask.order_id)
        left = order.total_fen - order.refund_reserved_fen
        if order.status in REFUNDABLE and left > 0:
            await request_refund(conn, order, amount_fen=left, reason=ask.reason)


async def _release_lines(conn: BaseDBAsyncClient, order: Order, lines: list[OrderLine], now: datetime) -> None:
    """Each line's room gives back what the unpaid or wholly refunded order held, once per line."""
    for line in lines:
        outcome = await line_kind(line.kind).release(conn, order, line)
        await OrderLine.filter(id=line.id, released_at=None).using_db(conn).update(released_at=now)
        await follow(conn, outcome)


async def close_unpaid(conn: BaseDBAsyncClient, order_id: int, reason: str) -> bool:
    """Close a pending order and give back what its lines hold; True only for the one caller that closed it."""
    now = clock.now()
    won = await Order.filter(id=order_id, status=OrderStatus.pending_payment).using_db(conn).update(
        status=OrderStatus.closed, closed_at=now, close_reason=reason[:32]
    )
    if not won:
        return False
    order = await get_order(conn, order_id)
    await _release_lines(conn, order, await lines_of(conn, order_id), now)
    await checkout.release_sources(conn, order)
    log.info("orders.closed", order_id=order_id, reason=reason)
    return True


async def request_refund(
    conn: BaseDBAsyncClient,
    order: Order,
    *,
    amount_fen: int,
    reason: str,
    run_line_hooks: bool = True,
    idempotency_key: str | None = None,
    requested_fen: int | None = None,
) -> Refund:
    """Record a refund of `amount_fen` and queue it for the gateway; idempotent per (order, reason), or per
    `idempotency_key` when the caller gives one (staff refunds: `staff_refund` answers a repeated key first).

    The amount is reserved on the order with a conditional update, so refunds never exceed what
    was paid, whatever runs concurrently. A refund of everything left moves the order to `refunding`.
    """
    if idempotency_key is None:
        out_refund_no = out_refund_no_for(order, reason)
        existing = await Refund.get_or_none(out_refund_no=out_refund_no).using_db(conn)
        if existing is not None:
            return existing
    else:
        out_refund_no = out_refund_no_for_key(order, idempotency_key)
    if amount_fen < 1:
        raise ValidationFailed("A refund must be at least 1 fen.", field="amount_fen")
    money = refundable_fen(order)
    if amount_fen > money:
        raise RefundTooLarge(field="amount_fen", left_fen=money)
    reserved = await Order.filter(
        id=order.id, status__in=REFUNDABLE, refund_reserved_fen__lte=money - amount_fen
    ).using_db(conn).update(refund_reserved_fen=F("refund_reserved_fen") + amount_fen)
    if not reserved:
        current = await Order.filter(id=order.id).using_db(conn).select_for_update().first()
        if current is not None and current.status in REFUNDABLE:
            raise RefundTooLarge(field="amount_fen", left_fen=money - current.refund_reserved_fen)
        raise RefundNotAllowed(order_id=order.id, status=current.status.value if current else None)
    await Order.filter(
        id=order.id, status__in=(OrderStatus.paid, OrderStatus.fulfilled), refund_reserved_fen=money
    ).using_db(conn).update(status=OrderStatus.refunding)
    # Reverse order of the sources: WeChat Pay first, then stored value, then points (computed under the
    # order's row lock, which the reservation above holds).
    wechat_fen, sv_fen, points_fen = await checkout.allocate_refund(conn, order, amount_fen)
    now = clock.now()
    try:
        refund = await Refund.create(
            order_id=order.id, out_refund_no=out_refund_no, reason=reason[:32], amount_fen=amount_fen,
            idempotency_key=idempotency_key, requested_fen=requested_fen, created_at=now, updated_at=now,
            wechat_fen=None if wechat_fen == amount_fen else wechat_fen, using_db=conn,
        )
    except IntegrityError:
        if idempotency_key is None:
            raise
        # The same key, at the same moment, for another order (the order lock serialises one order's refunds).
        raise RefundKeyReused(field="Idempotency-Key") from None
    # Hooks see the order with this refund reserved: it is a full refund when reserved == total.
    order = await get_order(conn, order.id)
    if run_line_hooks:
        for line in await lines_of(conn, order.id):
            await line_kind(line.kind).on_refund_requested(conn, order, line, refund)
    await checkout.record_refund_parts(conn, refund, sv_fen, points_fen)
    if wechat_fen > 0:
        await enqueue(conn, "orders.send_refund", refund.id)
    else:
        # Nothing goes through WeChat Pay: the stored value and points come back now.
        await apply_refund_result(conn, refund, RefundResult(
            out_trade_no=order.out_trade_no, out_refund_no=out_refund_no, refund_id=None, status="SUCCESS",
            refund_fen=0, mchid=""), source="internal")
        refund = await Refund.get(id=refund.id).using_db(conn)
    log.info("orders.refund_requested", order_id=order.id, out_refund_no=out_refund_no, amount_fen=amount_fen)
    return refund


async def apply_refund_result(
    conn: BaseDBAsyncClient, refund: Refund, result: RefundResult, *, source: str
) -> RefundStatus:
    """Move a refund forward with what the gateway said; confirming it happens once."""
    now = clock.now()
    open_states = (RefundStatus.pending, RefundStatus.processing)
    if result.status == "SUCCESS":
        won = await Refund.filter(id=refund.id, status__in=open_states).using_db(conn).update(
            status=RefundStatus.succeeded, refund_id=result.refund_id, succeeded_at=now, updated_at=now
        )
        if won:
            await _refund_confirmed(conn, refund)
        return RefundStatus.succeeded
    if result.status == "PROCESSING":
        await Refund.filter(id=refund.id, status=RefundStatus.pending).using_db(conn).update(
            status=RefundStatus.processing, refund_id=result.refund_id, updated_at=now
        )
        return RefundStatus.processing
    final = RefundStatus.closed if result.status == "CLOSED" else RefundStatus.abnormal
    won = await Refund.filter(id=refund.id, status__in=open_states).using_db(conn).update(
        status=final, refund_id=result.refund_id, updated_at=now, last_error=f"gateway: {result.status}"[:255]
    )
    if won:
        # Money is stuck outside our hands; finance must act (the refund stays reserved on the order).
        log.error("orders.refund_needs_attention", refund_id=refund.id, status=result.status, source=source)
    return final


async def _refund_confirmed(conn: BaseDBAsyncClient, refund: Refund) -> None:
    order_id = refund.order_id
    await Order.filter(id=order_id).using_db(conn).update(refunded_fen=F("refunded_fen") + refund.amount_fen)
    order = await get_order(conn, order_id)
    if order.refunded_fen >= refundable_fen(order):
        await Order.filter(id=order_id, status=OrderStatus.refunding).using_db(conn).update(
            status=OrderStatus.refunded, refunded_at=clock.now()
        )
        order = await get_order(conn, order_id)
    lines = await lines_of(conn, order_id)
    for line in lines:
        await line_kind(line.kind).on_refunded(conn, order, line, refund)
    await checkout.unwind_refund(conn, order, refund)
    if order.paid_handled_at is not None:
        refunded = await checkout.refund_consumption_fen(conn, refund, lines)
        if refunded > 0 and checkout.consumption_fen(order, lines) > 0:
            await partners.refund_order_consumption(
                conn, order_id=order_id, refunded_fen=refunded, out_refund_no=refund.out_refund_no
            )
    log.info("orders.refund_succeeded", order_id=order_id, out_refund_no=refund.out_refund_no)


async def note_refund_attempt(conn: BaseDBAsyncClient, refund_id: int, error: str) -> None:
    await Refund.filter(id=refund_id).using_db(conn).update(
        attempts=F("attempts") + 1, last_error=error[:255], updated_at=clock.now()
    )


async def staff_refund(
    conn: BaseDBAsyncClient, order_id: int, *, reason: str, amount_fen: int | None, idempotency_key: str
) -> tuple[Refund, bool]:
    """A refund finance decides (the customer asked, a service issue); by default everything left.

    Idempotent on the client's key, never on the reason: the same key returns the same refund in whatever
    state it is now (the bool says it is a replay, so the caller writes no second audit row); the key reused
    for another order, amount or reason is `409 idempotency_key_reused`; a new key is a new refund, bounded
    by what is left to refund. Call it first in its transaction: the order lock serialises refunds of one
    order, so the same key sent twice at once finds the first refund instead of reserving twice.
    """
    await lock_order(conn, order_id=order_id)
    existing = await Refund.get_or_none(idempotency_key=idempotency_key).using_db(conn)
    if existing is not None:
        if (existing.order_id, existing.reason, existing.requested_fen) != (order_id, reason, amount_fen):
            raise RefundKeyReused(field="Idempotency-Key", refund_id=existing.id)
        return existing, True
    order = await get_order(conn, order_id)
    if order.status not in REFUNDABLE:
        raise RefundNotAllowed(order_id=order_id, status=order.status.value)
    left = refundable_fen(order) - order.refund_reserved_fen
    amount = left if amount_fen is None else amount_fen
    if amount < 1:
        raise RefundNotAllowed(order_id=order_id, left_fen=left)
    refund = await request_refund(conn, order, amount_fen=amount, reason=reason, idempotency_key=idempotency_key,
                                  requested_fen=amount_fen)
    return refund, False
