"""Payment procedures that talk to the gateway: start a payment, receive notifications, close or
reconcile an unpaid order, push a refund until the gateway confirms it.

Like tasks.py these sit at the edge: each gateway call happens outside any transaction, and each
procedure opens its own short transactions around the service calls (retrying InnoDB deadlocks).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import structlog
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError

from orders import service
from orders.errors import (
    OrderAlreadyPaid, OrderBeingPaid, OrderNotFound, OrderNotPayable, PaymentWindowClosed,
)
from orders.gateway import (
    GatewayRefused,
    NotificationRejected,
    PaymentGateway,
    PrepayRequest,
    RefundRequest,
    RefundResult,
    RequestPaymentParams,
    TradeState,
)
from orders.models import (
    NotificationOutcome, Order, OrderStatus, Refund, RefundStatus, refund_wechat_amount, wechat_amount,
)
from kernel import clock
from kernel.db import run_in_transaction
from kernel.identity.models import Customer

log = structlog.get_logger(__name__)


# --- paying -------------------------------------------------------------------------------------

async def start_payment(gateway: PaymentGateway, customer_id: int, order_id: int) -> RequestPaymentParams:
    """The wx.requestPayment parameters for a pending order (prepay once, re-sign on later calls)."""
    async def work(conn: BaseDBAsyncClient):
        order = await service.get_customer_order(conn, customer_id, order_id)
        customer = await Customer.get(id=customer_id).using_db(conn)
        return order, customer

    order, customer = await run_in_transaction(work)
    if order.status != OrderStatus.pending_payment:
        raise OrderNotPayable(order_id=order_id, status=order.status.value)
    if clock.now() >= order.expires_at:
        raise PaymentWindowClosed(order_id=order_id)
    prepay_id = order.prepay_id
    if prepay_id is None:
        # WeChat answers the same prepay_id for the same out_trade_no and parameters, so a race
        # between two taps on "pay" is harmless; the first one recorded is kept.
        prepay_id = await gateway.prepay(
            PrepayRequest(
                out_trade_no=order.out_trade_no, description=order.description, total_fen=wechat_amount(order),
                payer_openid=customer.openid, expires_at=order.expires_at,
            )
        )

        async def work(conn: BaseDBAsyncClient):
            await service.record_prepay(conn, order.id, prepay_id)
            # The first prepay recorded wins (two taps on "pay" may both have asked WeChat).
            return (await service.get_order(conn, order.id)).prepay_id or prepay_id

        prepay_id = await run_in_transaction(work)
    return gateway.request_payment_params(prepay_id)


# --- notifications ------------------------------------------------------------------------------

@dataclass(frozen=True)
class NotifyResult:
    accepted: bool  # answer WeChat with success (2xx) or failure (4xx: it will retry)
    outcome: str
    http_status: int


_ACK = {
    NotificationOutcome.applied, NotificationOutcome.duplicate, NotificationOutcome.paid_after_close,
    NotificationOutcome.not_success,
}
# An unknown out_trade_no is not acknowledged: the order may sit in a transaction that has not committed
# yet, and WeChat delivers a refused notification again (15 s, 15 s, 30 s, 3 min... for about a day).
# Acknowledging it would leave the payment to the query at the end of the payment window.
_REFUSED_STATUS = {NotificationOutcome.unknown_order: 404}


async def receive_payment_notification(
    gateway: PaymentGateway, headers: Mapping[str, str], body: bytes, *, source: str = "notify"
) -> NotifyResult:
    """Verify, decrypt, check and apply a payment notification (支付结果通知)."""
    try:
        notification = gateway.parse_notification(headers, body)
    except NotificationRejected as exc:
        log.warning("orders.notify_rejected", reason=exc.reason, source=source)
        return NotifyResult(False, exc.reason, 401)
    if not notification.event_type.startswith("TRANSACTION."):
        log.warning("orders.notify_unexpected_event", event_type=notification.event_type)
        return NotifyResult(True, "ignored_event", 200)
    trade = TradeState.from_resource(notification.resource)
    outcome = await _apply_trade(gateway, trade, source=source, notification_id=notification.id,
                                 event_type=notification.event_type)
    accepted = outcome in _ACK
    return NotifyResult(accepted, outcome.value, 200 if accepted else _REFUSED_STATUS.get(outcome, 400))


async def _apply_trade(gateway: PaymentGateway, trade: TradeState, **event) -> NotificationOutcome:
    async def work(conn: BaseDBAsyncClient) -> NotificationOutcome:
        return await service.apply_payment(
            conn, trade, expected_mchid=gateway.mchid, expected_appid=gateway.appid, **event
        )

    try:
        return await run_in_transaction(work)
    except IntegrityError:
        # The transaction id is already on another order: never apply it twice, record the oddity.
        async def work(conn: BaseDBAsyncClient):
            await service.record_event(conn, source=event["source"], outcome=NotificationOutcome.duplicate,
                                          out_trade_no=trade.out_trade_no, transaction_id=trade.transaction_id or "")

        await run_in_transaction(work)
        log.error("orders.transaction_id_reused", out_trade_no=trade.out_trade_no)
        return NotificationOutcome.duplicate


async def receive_refund_notification(
    gateway: PaymentGateway, headers: Mapping[str, str], body: bytes
) -> NotifyResult:
    """Verify, decrypt and apply a refund notification (退款结果通知): merchant and amount must match."""
    try:
        notification = gateway.parse_notification(headers, body)
    except NotificationRejected as exc:
        log.warning("orders.refund_notify_rejected", reason=exc.reason)
        return NotifyResult(False, exc.reason, 401)
    result = RefundResult.from_resource(notification.resource)

    async def work(conn: BaseDBAsyncClient) -> NotifyResult:
        record = dict(source="refund_notify", notification_id=notification.id, event_type=notification.event_type,
                      out_trade_no=result.out_trade_no, out_refund_no=result.out_refund_no,
                      amount_fen=result.refund_fen)
        await service.lock_order(conn, out_trade_no=result.out_trade_no)  # first, as in push_refund
        refund = await Refund.get_or_none(out_refund_no=result.out_refund_no).using_db(conn)
        if refund is None:
            await service.record_event(conn, outcome=NotificationOutcome.unknown_order, **record)
            return NotifyResult(True, "unknown_refund", 200)
        if result.mchid != gateway.mchid:
            await service.record_event(conn, outcome=NotificationOutcome.merchant_mismatch, **record)
            return NotifyResult(False, "merchant_mismatch", 400)
        if result.refund_fen != refund_wechat_amount(refund):
            await service.record_event(conn, outcome=NotificationOutcome.amount_mismatch, **record)
            return NotifyResult(False, "amount_mismatch", 400)
        before = refund.status
        status = await service.apply_refund_result(conn, refund, result, source="refund_notify")
        outcome = NotificationOutcome.applied if status != before else NotificationOutcome.duplicate
        await service.record_event(conn, outcome=outcome, **record)
        return NotifyResult(True, outcome.value, 200)

    notify = await run_in_transaction(work)
    if not notify.accepted:
        log.warning("orders.refund_notify_refused", outcome=notify.outcome, out_refund_no=result.out_refund_no)
    return notify


async def pay_in_sandbox(gateway: PaymentGateway, customer_id: int, out_trade_no: str) -> tuple[NotifyResult, Order]:
    """The customer pays their order in the sandbox: a signed notification goes through the notify path."""
    async def work(conn: BaseDBAsyncClient):
        order = await service.get_customer_order_by_trade_no(conn, customer_id, out_trade_no)
        payer_openid = (await Customer.get(id=customer_id).using_db(conn)).openid
        return order, payer_openid

    order, payer_openid = await run_in_transaction(work)
    make = getattr(gateway, "payment_success_notification", None)
    if make is None:
        raise OrderNotFound(out_trade_no=out_trade_no, reason="sandbox gateway not active")
    headers, body = make(out_trade_no=out_trade_no, total_fen=wechat_amount(order), payer_openid=payer_openid)
    result = await receive_payment_notification(gateway, headers, body, source="sandbox")

    async def work(conn: BaseDBAsyncClient):
        return result, await service.get_order(conn, order.id)

    return await run_in_transaction(work)


# --- closing and reconciling unpaid orders --------------------------------------------------------

class TryLater(Exception):
    """The gateway could not settle the question now (unreachable, or the customer is mid-payment)."""


async def close_or_confirm(gateway: PaymentGateway, order_id: int, *, reason: str = "expired") -> str:
    """Settle an unpaid order whose window has ended: ask the gateway first, then close it.

    The notification may never have come: when the gateway says the trade succeeded the payment is
    applied (the same path as a notification); otherwise the trade is closed at the gateway so it
    can no longer be paid, and then here, releasing what the order held, exactly once.
    """
    order = await Order.get_or_none(id=order_id)
    if order is None or order.status != OrderStatus.pending_payment:
        return "settled"
    if clock.now() < order.expires_at:
        return "not_due"
    paid = await _close_at_gateway(gateway, order)
    if paid is not None:
        return paid

    async def work(conn: BaseDBAsyncClient) -> bool:
        return await service.close_unpaid(conn, order_id, reason)

    return "closed" if await run_in_transaction(work) else "settled"


async def _close_at_gateway(gateway: PaymentGateway, order: Order) -> str | None:
    """Before an unpaid order is closed here: a trade opened at WeChat is asked about (a payment that did
    happen is applied, and its outcome returned) and otherwise closed there, so that nothing can be paid
    after its coupon, points and stored value are given back. None: close it. An order never sent to WeChat
    (no prepay) cannot be paid, so it needs no call."""
    if order.prepay_id is None:
        return None
    try:
        trade = await gateway.query_trade(order.out_trade_no)
    except GatewayRefused as exc:
        raise TryLater(exc.gateway_code) from exc
    if trade.trade_state == "SUCCESS":
        outcome = await _apply_trade(gateway, trade, source="query", event_type="QUERY." + trade.trade_state)
        return "paid" if outcome == NotificationOutcome.applied else outcome.value
    if trade.trade_state == "USERPAYING":
        raise TryLater("USERPAYING")
    if trade.trade_state not in ("CLOSED", "REVOKED", "PAYERROR"):
        try:
            await gateway.close_trade(order.out_trade_no)
        except GatewayRefused as exc:
            # e.g. ORDERPAID: paid between our query and the close; the next attempt applies it.
            raise TryLater(exc.gateway_code) from exc
    return None


async def cancel_by_customer(gateway: PaymentGateway, customer_id: int, order_id: int) -> Order:
    """The customer cancels their own unpaid order now: closed by the same path as the end of its payment
    window (`service.close_unpaid`), which gives back the coupon, points and stored value once each.

    Another customer's order is `404`. A closed order is returned as it is (cancelling twice, or after the
    window closed it, gives the same answer and nothing back twice). A paid one is `409 order_already_paid`;
    one the customer is paying at this moment (WeChat says USERPAYING, or it was paid between our question
    and the close) is `409 order_being_paid`. Against a payment notification exactly one wins: WeChat closes
    the trade before we close the order, and the order's conditional update decides between the two here.
    """
    async def read(conn: BaseDBAsyncClient) -> Order:
        return await service.get_customer_order(conn, customer_id, order_id)

    order = await run_in_transaction(read)
    if order.status == OrderStatus.pending_payment:
        try:
            await _close_at_gateway(gateway, order)
        except TryLater as exc:
            raise OrderBeingPaid(order_id=order_id, gateway_state=str(exc)) from exc

        async def close(conn: BaseDBAsyncClient) -> Order:
            await service.close_unpaid(conn, order_id, "cancelled")
            return await service.get_order(conn, order_id)

        order = await run_in_transaction(close)
    if order.status != OrderStatus.closed:
        raise OrderAlreadyPaid(order_id=order_id, status=order.status.value)
    return order


# --- refunds ----------------------------------------------------------------------------------------

async def push_refund(gateway: PaymentGateway, refund_id: int) -> RefundStatus:
    """Ask the gateway for a refund (or its status) and record the answer.

    Returns the refund's status; `pending`/`processing` mean "ask again later". The gateway is
    idempotent on out_refund_no, so asking again after a lost answer refunds once.
    """
    refund = await Refund.get_or_none(id=refund_id)
    if refund is None:
        return RefundStatus.failed
    if refund.status not in (RefundStatus.pending, RefundStatus.processing):
        return refund.status
    order = await Order.get(id=refund.order_id)
    try:
        if refund.status == RefundStatus.processing:
            result = await gateway.query_refund(refund.out_refund_no)
        else:
            result = await gateway.refund(
                RefundRequest(
                    out_trade_no=order.out_trade_no, transaction_id=order.transaction_id,
                    out_refund_no=refund.out_refund_no, refund_fen=refund_wechat_amount(refund),
                    total_fen=wechat_amount(order),
                    reason=refund.reason,
                )
            )
    except GatewayRefused as exc:
        gateway_code = exc.gateway_code

        async def refused(conn: BaseDBAsyncClient) -> RefundStatus:
            await service.lock_order(conn, order_id=refund.order_id)  # first, as in the other refund paths
            await service.note_refund_attempt(conn, refund_id, f"refused: {gateway_code}")
            if gateway_code == "RESOURCE_NOT_EXISTS" and refund.status == RefundStatus.processing:
                # The gateway forgot it (or never had it): submit it again under the same out_refund_no.
                await Refund.filter(id=refund_id, status=RefundStatus.processing).using_db(conn).update(
                    status=RefundStatus.pending)
                return RefundStatus.pending
            failed = await Refund.filter(id=refund_id, status__in=(RefundStatus.pending, RefundStatus.processing)
                                         ).using_db(conn).update(status=RefundStatus.failed)
            if failed:  # once: the conditional update above decides
                await service.refund_ended_unpaid(conn, refund)
            return RefundStatus.failed

        status = await run_in_transaction(refused)
        if status == RefundStatus.failed:
            log.error("orders.refund_refused", refund_id=refund_id, code=gateway_code)
        return status

    async def work(conn: BaseDBAsyncClient) -> RefundStatus:
        await service.lock_order(conn, order_id=refund.order_id)  # first: the paid job may be committing
        current = await Refund.get(id=refund_id).using_db(conn)
        await service.note_refund_attempt(conn, refund_id, "" if result.status == "SUCCESS" else result.status)
        return await service.apply_refund_result(conn, current, result, source="refund_api")

    return await run_in_transaction(work)
