"""Paying, fulfilling and closing orders: a confirmed payment applied once, the paid-order job (each line's
room acts, the payment counts as consumption), what a selling room answered carried out, an unpaid order closed.

Every function takes the caller's connection and never commits. State changes are conditional updates
(`WHERE status = ...`) whose affected-row count decides who won; their side effects go to the outbox in
the same transaction.
"""

from __future__ import annotations

from datetime import datetime

import structlog
from tortoise.backends.base.client import BaseDBAsyncClient

from orders import checkout, partners
from orders.gateway import TradeState
from orders.hooks import LineOutcome, line_kind
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
from orders.placing import get_order, lines_of
from orders.refunds import REFUNDABLE, request_refund
from kernel import clock
from kernel.outbox import enqueue

log = structlog.get_logger(__name__)


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
            # Only WeChat's part: the close already gave the coupon, points and stored value back.
            await request_refund(conn, current, amount_fen=wechat_amount(current), reason="paid_after_close",
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
        left = refundable_fen(order) - order.refund_reserved_fen
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
