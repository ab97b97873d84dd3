"""Refunds: asked for once per (order, reason) or per staff Idempotency-Key, reserved on the order so they never
exceed what was paid, moved forward with what the gateway says, and unwound source by source when confirmed.

Every function takes the caller's connection and never commits.
"""

from __future__ import annotations

import hashlib

import structlog
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F

from orders import checkout, package_cards, partners
from orders.errors import PartialRefundOfPackageCards, RefundKeyReused, RefundNotAllowed, RefundTooLarge
from orders.gateway import RefundResult
from orders.hooks import NOTHING, line_kind
from orders.models import Order, OrderStatus, Refund, RefundStatus, refundable_fen
from orders.placing import get_order, lines_of, lock_order
from kernel import clock
from kernel.errors import ValidationFailed
from kernel.outbox import enqueue

log = structlog.get_logger(__name__)


REFUNDABLE = (OrderStatus.paid, OrderStatus.fulfilled, OrderStatus.refunding)


def out_refund_no_for(order: Order, reason: str) -> str:
    """One system refund per order and reason: asking twice for the same refund finds the first one."""
    return f"{order.out_trade_no}-{reason}"[:64]


def out_refund_no_for_key(order: Order, idempotency_key: str) -> str:
    # WeChat Pay allows [0-9A-Za-z_-|*@] in 商户退款单号 and the key may hold '.' or ':': use its digest.
    return f"{order.out_trade_no}-K{hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]}"


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

    A system refund (no key) looks for its (order, reason) refund after taking the order lock, so the same
    refund asked many times at once queues there and every caller gets the first one. The refund row is
    written before the amount is reserved: when the caller's snapshot predates the previous lock holder's
    commit (the look-up cannot see its refund), the unique `out_refund_no` refuses the insert before anything
    else changed, and the refund that holder made is returned. A refund the reservation refuses is deleted
    again before the refusal is raised.
    """
    if idempotency_key is None:
        out_refund_no = out_refund_no_for(order, reason)
        await lock_order(conn, order_id=order.id)
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
    now = clock.now()
    try:
        refund = await Refund.create(
            order_id=order.id, out_refund_no=out_refund_no, reason=reason[:32], amount_fen=amount_fen,
            idempotency_key=idempotency_key, requested_fen=requested_fen, created_at=now, updated_at=now,
            using_db=conn,
        )
    except IntegrityError:
        if idempotency_key is None:
            # Committed by the previous holder of the order lock after this transaction's snapshot: a locking
            # read sees it (the row exists, so it locks that row only).
            existing = await Refund.filter(out_refund_no=out_refund_no).using_db(conn).select_for_update().first()
            if existing is not None:
                return existing
            raise
        # The same key, at the same moment, for another order (the order lock serialises one order's refunds).
        raise RefundKeyReused(field="Idempotency-Key") from None
    # Reverse order of the sources: WeChat Pay first, then stored value, then points (computed under the
    # order's row lock, which every caller holds by now: staff_refund takes it first, system refunds above;
    # from the refunds committed before it, read by a locking read after this row is written).
    wechat_fen, sv_fen, points_fen = await checkout.allocate_refund(conn, order, refund)
    if wechat_fen != amount_fen:  # null: all of it through WeChat Pay
        await Refund.filter(id=refund.id).using_db(conn).update(wechat_fen=wechat_fen)
        refund.wechat_fen = wechat_fen
    reserved = await Order.filter(
        id=order.id, status__in=REFUNDABLE, refund_reserved_fen__lte=money - amount_fen
    ).using_db(conn).update(refund_reserved_fen=F("refund_reserved_fen") + amount_fen)
    if not reserved:
        # A refused refund changes nothing, even for a caller that catches the refusal and commits.
        await Refund.filter(id=refund.id).using_db(conn).delete()
        current = await Order.filter(id=order.id).using_db(conn).select_for_update().first()
        if current is not None and current.status in REFUNDABLE:
            raise RefundTooLarge(field="amount_fen", left_fen=money - current.refund_reserved_fen)
        raise RefundNotAllowed(order_id=order.id, status=current.status.value if current else None)
    await Order.filter(
        id=order.id, status__in=(OrderStatus.paid, OrderStatus.fulfilled), refund_reserved_fen=money
    ).using_db(conn).update(status=OrderStatus.refunding)
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
        # An ABNORMAL refund that finance paid out by hand in the merchant platform: WeChat Pay says SUCCESS
        # after all. The money left, so it is confirmed (once: this conditional update decides) after what its
        # end gave back is taken again; only CLOSED and refused refunds are final.
        late = await Refund.filter(id=refund.id, status=RefundStatus.abnormal).using_db(conn).update(
            status=RefundStatus.succeeded, refund_id=result.refund_id, succeeded_at=now, updated_at=now)
        if late:
            if not await _paid_after_all(conn, refund):
                return RefundStatus.abnormal
            log.warning("orders.refund_paid_after_abnormal", refund_id=refund.id, source=source)
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
        # Finance must look (an ABNORMAL refund may still be paid out by hand); the money is not reserved any more.
        log.error("orders.refund_needs_attention", refund_id=refund.id, status=result.status, source=source)
        await refund_ended_unpaid(conn, refund)
    return final


async def refund_ended_unpaid(conn: BaseDBAsyncClient, refund: Refund) -> None:
    """The refund reached a final state other than succeeded (its conditional update won, so this runs once,
    under the order lock every refund path takes first): the money never left, so its amount is no longer
    reserved on the order (finance may ask for it again), an order that was `refunding` is again what it was
    (fulfilled or paid), and each line gives back what asking for the refund took (a top-up's principal goes
    back to the balance, a package card's voided sessions are redeemable again).

    An end that is final (closed, refused; ABNORMAL is not) leaves the clinic with money it must deliver for or
    send back: the refund is asked again when a line cannot take back what it gave (`_ask_again`), and what the
    paid-order job skipped because of this refund is delivered (`_deliver_what_was_skipped`)."""
    order_id = refund.order_id
    await Order.filter(id=order_id, refund_reserved_fen__gte=refund.amount_fen).using_db(conn).update(
        refund_reserved_fen=F("refund_reserved_fen") - refund.amount_fen)
    # `refunding` means everything left is reserved: no longer true once this refund's amount is free again.
    await Order.filter(id=order_id, status=OrderStatus.refunding, fulfilled_at__isnull=False).using_db(conn).update(
        status=OrderStatus.fulfilled)
    await Order.filter(id=order_id, status=OrderStatus.refunding).using_db(conn).update(status=OrderStatus.paid)
    order = await get_order(conn, order_id)
    lines = await lines_of(conn, refund.order_id)
    asks = NOTHING
    for line in lines:
        asks += await line_kind(line.kind).on_refund_ended_unpaid(conn, order, line, refund) or NOTHING
    ended = await Refund.get(id=refund.id).using_db(conn)  # the end state its caller just wrote
    if ended.status == RefundStatus.abnormal:
        # Not final: finance may still pay it out by hand in the merchant platform, and its late SUCCESS completes
        # it (`_paid_after_all`). Asking again or delivering now could give the customer the money twice, or the
        # money and the goods.
        return
    if asks.refunds or order.closed_at is not None:
        # A line cannot take back what the refund took (a seat in a group that settled since, stock sold since),
        # or the order was closed before its payment came (the close gave its coupon, points and stored value
        # back; there is nothing to deliver): the money must still go back.
        await _ask_again(conn, order, ended)
    else:
        await _deliver_what_was_skipped(conn, order, lines)


AGAIN = "again_"


async def _ask_again(conn: BaseDBAsyncClient, order: Order, ended: Refund) -> None:
    """Ask a refund that ended for good (closed, refused) once more, same amount, under a reason unique to it, so
    it is asked once however its end is reported. Once only: a refund asked again that ends unpaid too is left for
    finance (a gateway refusing every refund must not make an endless chain of them). The lines gave back what the
    first refund took when it was asked (that is why they ask again), so their hooks do not run a second time."""
    if ended.reason.startswith(AGAIN):
        log.error("orders.refund_asked_again_ended_unpaid", refund_id=ended.id, order_id=order.id)
        return
    if order.status not in REFUNDABLE or ended.amount_fen > refundable_fen(order) - order.refund_reserved_fen:
        # Cannot happen while every refund reserves under the order lock; never fail the gateway's answer over it.
        log.error("orders.refund_not_asked_again", refund_id=ended.id, order_id=order.id)
        return
    await request_refund(conn, order, amount_fen=ended.amount_fen, reason=f"{AGAIN}{ended.id}", run_line_hooks=False)


async def _deliver_what_was_skipped(conn: BaseDBAsyncClient, order: Order, lines: list) -> None:
    """The paid-order job ran while the whole amount was asked back, so it delivered nothing and gave the lines'
    holds back (`handle_paid_order`); that refund has now ended for good and the clinic keeps the money, so the
    order is paid like any other and what was bought is delivered: the job is opened and queued again (it looks
    at the reservation once more, and each line's room delivers or answers). Finance may still refund it."""
    if order.status != OrderStatus.paid or order.paid_handled_at is None or order.fulfilled_at is not None:
        return
    if not any(line.released_at is not None for line in lines):
        return  # the job ran normally (a bestie seat waiting for its group): nothing was skipped
    reopened = await Order.filter(
        id=order.id, status=OrderStatus.paid, paid_handled_at__isnull=False, fulfilled_at=None
    ).using_db(conn).update(paid_handled_at=None)
    if reopened:
        log.warning("orders.paid_job_reopened", order_id=order.id)
        await enqueue(conn, "orders.order_paid", order.id)


async def _paid_after_all(conn: BaseDBAsyncClient, refund: Refund) -> bool:
    """Reserve the ABNORMAL refund's amount on the order again (its end released it) and let each line take
    back what it gave back. When the order no longer has that much left to refund (finance asked for the money
    again meanwhile), nothing changes: the refund stays ABNORMAL, marked and logged, for finance to settle with
    WeChat Pay (one of the two refunds cannot be paid: the order never had that much)."""
    order = await get_order(conn, refund.order_id)
    money = refundable_fen(order)
    standing = await Refund.filter(order_id=order.id, status__not_in=checkout.ENDED_UNPAID).exclude(
        id=refund.id).using_db(conn).values_list("amount_fen", flat=True)
    if order.refund_reserved_fen - sum(standing) >= refund.amount_fen:
        # Ended before its end released the reservation (before 0.2): its amount is still held on the order.
        reserved = 1
    else:
        reserved = await Order.filter(
            id=order.id, status__in=REFUNDABLE, refund_reserved_fen__lte=money - refund.amount_fen
        ).using_db(conn).update(refund_reserved_fen=F("refund_reserved_fen") + refund.amount_fen)
    if not reserved:
        await Refund.filter(id=refund.id).using_db(conn).update(
            status=RefundStatus.abnormal, succeeded_at=None, last_error="gateway: SUCCESS, but the order's money was "
            "asked for again meanwhile")
        log.error("orders.refund_paid_after_abnormal_not_reserved", refund_id=refund.id, order_id=order.id)
        return False
    await Order.filter(
        id=order.id, status__in=(OrderStatus.paid, OrderStatus.fulfilled), refund_reserved_fen=money
    ).using_db(conn).update(status=OrderStatus.refunding)
    order = await get_order(conn, order.id)
    for line in await lines_of(conn, order.id):
        await line_kind(line.kind).on_refund_paid_after_all(conn, order, line, refund)
    return True


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
    conn: BaseDBAsyncClient, order_id: int, *, reason: str, amount_fen: int | None, idempotency_key: str,
    for_card_sessions: bool = False,
) -> tuple[Refund, bool]:
    """A refund finance decides (the customer asked, a service issue); by default everything left.

    Idempotent on the client's key, never on the reason: the same key returns the same refund in whatever
    state it is now (the bool says it is a replay, so the caller writes no second audit row); the key reused
    for another order, amount or reason is `409 idempotency_key_reused`; a new key is a new refund, bounded
    by what is left to refund. Call it first in its transaction: the order lock serialises refunds of one
    order, so the same key sent twice at once finds the first refund instead of reserving twice.

    A partial refund of an order whose package cards still hold unused sessions is refused
    (`422 partial_refund_of_package_cards`): the money would leave while every session stays redeemable.
    Those cards are refunded per card (`package_cards.refund_unused`, which marks the sessions it pays for and
    calls this with `for_card_sessions`), or the whole order is (its unused sessions are voided).
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
    if amount < left and not for_card_sessions:
        cards = await package_cards.cards_with_unused_sessions(conn, order_id, await lines_of(conn, order_id))
        if cards is None or cards:
            raise PartialRefundOfPackageCards(field="amount_fen", card_ids=cards or [], left_fen=left,
                                              cards_created=cards is not None)
    refund = await request_refund(conn, order, amount_fen=amount, reason=reason, idempotency_key=idempotency_key,
                                  requested_fen=amount_fen)
    return refund, False
