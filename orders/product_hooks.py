"""Line kinds of the money products (registered in rooms/__init__.py like every seller's): package and course
cards created on payment, goods handed over at once, top-ups credited to stored value."""

from __future__ import annotations

from orders import package_cards, stored_value
from orders.hooks import LineKind, LineOutcome, delivered
from orders.product_models import Product


async def _cards_paid(conn, order, line) -> LineOutcome:
    from orders.service import lines_of

    paid = (await package_cards.line_paid_fen(conn, order, await lines_of(conn, order.id)))[line.id]
    await package_cards.create_cards(conn, order, line, paid)
    return delivered(order)


async def _cards_refund_requested(conn, order, line, refund) -> None:
    from orders.models import refundable_fen

    if order.refund_reserved_fen >= refundable_fen(order):
        await package_cards.void_unused_for_order(conn, order.id, refund.id)


async def _cards_refund_ended_unpaid(conn, order, line, refund) -> None:
    await package_cards.give_back_sessions(conn, line, refund)


async def _cards_refund_paid_after_all(conn, order, line, refund) -> None:
    await package_cards.void_again(conn, line, refund)


async def _topup_applied(conn, order, line) -> None:
    # Credited in the transaction that marks the order paid: the balance is there when the customer looks.
    product = await Product.get(id=line.ref_id).using_db(conn)
    await stored_value.credit_topup(conn, order.customer_id, order.id, principal=line.amount_fen,
                                    bonus=product.topup_bonus_fen * line.quantity)


async def _topup_refund_requested(conn, order, line, refund) -> None:
    await stored_value.refund_topup(conn, order.customer_id, order.id, refund.amount_fen,
                                    out_refund_no=refund.out_refund_no)


async def _topup_refund_ended_unpaid(conn, order, line, refund) -> None:
    await stored_value.undo_topup_refund(conn, order.customer_id, order.id, out_refund_no=refund.out_refund_no)


async def _topup_refund_paid_after_all(conn, order, line, refund) -> None:
    await stored_value.redo_topup_refund(conn, order.customer_id, order.id, out_refund_no=refund.out_refund_no)


PACKAGE_CARD = LineKind("package_card", on_paid=_cards_paid, on_refund_requested=_cards_refund_requested,
                        on_refund_ended_unpaid=_cards_refund_ended_unpaid,
                        on_refund_paid_after_all=_cards_refund_paid_after_all)
GOODS = LineKind("goods")
TOPUP = LineKind("topup", on_payment_applied=_topup_applied, on_refund_requested=_topup_refund_requested,
                 on_refund_ended_unpaid=_topup_refund_ended_unpaid, on_refund_paid_after_all=_topup_refund_paid_after_all)
LINE_KINDS = [PACKAGE_CARD, GOODS, TOPUP]
