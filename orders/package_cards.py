"""Package and course cards (套餐卡/次卡): created when their order is paid, each session redeemed once at a
branch by the front desk (核销, like a voucher with several uses), unused sessions refunded at the price
actually paid per session."""

from __future__ import annotations

import secrets
from datetime import timedelta

from tortoise.backends.base.client import BaseDBAsyncClient

from kernel import clock
from kernel.errors import Conflict, NotFound
from orders.errors import RefundKeyReused
from orders import coupons
from orders.product_models import (
    Coupon,
    CouponKind,
    CouponTemplate,
    PackageCard,
    PackageCardStatus,
    PackageSession,
    Product,
)


class PackageCardNotFound(NotFound):
    code = "package_card_not_found"
    default_message = "No such card."


class SessionNotRedeemable(Conflict):
    code = "session_not_redeemable"
    default_message = "No session of this card can be redeemed (all used or refunded, expired, or another branch)."


class EarlierRefundAbnormal(Conflict):
    code = "earlier_refund_abnormal"
    default_message = ("These sessions came back from a refund WeChat Pay reports ABNORMAL; it may still be paid "
                       "(by hand in the merchant platform), so settle it there before refunding them again.")


class NothingToRefund(Conflict):
    code = "no_unused_sessions"
    default_message = "This card has no unused session to refund."


def shares(total: int, weights: list[int]) -> list[int]:
    """Split `total` fen over `weights` with cumulative floor rounding: the parts add up to exactly `total`."""
    whole = sum(weights)
    out, acc = [], 0
    for w in weights:
        before = total * acc // whole
        acc += w
        out.append(total * acc // whole - before)
    return out


async def line_paid_fen(conn: BaseDBAsyncClient, order, lines) -> dict[int, int]:
    """What each line actually cost: its amount less its share of the coupon (points and stored value are money).

    The coupon is shared only over the lines it covered when the checkout priced it (`coupons.discount_for`:
    the lines `applies_to` accepts, or a free service's own line), in proportion to their amounts: a coupon
    for one product makes that product's cards cheaper, never a card it does not cover."""
    paid = {line.id: line.amount_fen for line in lines}
    if not order.coupon_fen:
        return paid
    covered = await _lines_the_coupon_covered(conn, order, lines)
    if sum(line.amount_fen for line in covered) < order.coupon_fen:
        # The template or a product changed so that the covered lines no longer hold the discount (a product
        # moved to another category since): spread it over every line rather than price a line below zero.
        covered = list(lines)
    for line, share in zip(covered, shares(order.coupon_fen, [line.amount_fen for line in covered])):
        paid[line.id] -= share
    return paid


async def _lines_the_coupon_covered(conn: BaseDBAsyncClient, order, lines) -> list:
    coupon = await Coupon.get_or_none(id=order.coupon_id).using_db(conn)
    template_id = coupon.template_id if coupon else None  # type: ignore[attr-defined]
    template = await CouponTemplate.get_or_none(id=template_id).using_db(conn) if template_id else None
    if template is None:
        return list(lines)
    if template.kind == CouponKind.free_service:
        return [line for line in lines if line.ref_id == template.free_product_id]
    products = {p.id: p for p in await Product.filter(id__in=[line.ref_id for line in lines]).using_db(conn)}
    return [line for line in lines if line.ref_id in products and coupons.applies_to(template, products[line.ref_id])]


async def create_cards(conn: BaseDBAsyncClient, order, line, paid_fen: int) -> None:
    """One card per unit bought, once per line (the unique line id makes a second run change nothing)."""
    if await PackageCard.filter(line_id=line.id * 1000).using_db(conn).exists():  # unit 0 of this line
        return
    product = await Product.get(id=line.ref_id).using_db(conn)
    now = clock.now()
    expires = now + timedelta(days=product.validity_days) if product.validity_days else None
    per_unit = shares(paid_fen, [1] * line.quantity)
    for unit in range(line.quantity):
        titles = [item["title"] for item in product.items for _ in range(int(item["sessions"]))]
        card = await PackageCard.create(
            code="PK" + secrets.token_hex(8).upper(), customer_id=order.customer_id, order_id=order.id,
            line_id=line.id * 1000 + unit, product_id=product.id, title=product.name, branch_id=product.branch_id,
            paid_fen=per_unit[unit], sessions_total=len(titles), expires_at=expires, created_at=now, using_db=conn)
        values = shares(per_unit[unit], [1] * len(titles))
        await PackageSession.bulk_create(
            [PackageSession(card_id=card.id, seq=i + 1, title=t, value_fen=v)
             for i, (t, v) in enumerate(zip(titles, values))], using_db=conn)


async def customer_cards(conn: BaseDBAsyncClient, customer_id: int) -> list[tuple[PackageCard, list[PackageSession]]]:
    cards = await PackageCard.filter(customer_id=customer_id).using_db(conn).order_by("-id").limit(100)
    sessions: dict[int, list[PackageSession]] = {c.id: [] for c in cards}
    if cards:
        for s in await PackageSession.filter(card_id__in=list(sessions)).using_db(conn).order_by("seq"):
            sessions[s.card_id].append(s)  # type: ignore[attr-defined]
    return [(c, sessions[c.id]) for c in cards]


async def redeem_session(conn: BaseDBAsyncClient, *, code: str, branch_id: int, staff_id: int,
                         title: str | None = None) -> tuple[PackageCard, PackageSession]:
    """Redeem the card's next unused session (of `title` when given) at a branch; each session once."""
    card = await PackageCard.get_or_none(code=code.strip().upper()[:32]).using_db(conn)
    if card is None:
        raise PackageCardNotFound(field="code")
    now = clock.now()
    if card.status != PackageCardStatus.active or (card.expires_at is not None and card.expires_at <= now):
        raise SessionNotRedeemable(field="code", status=card.status.value, expired=card.expires_at is not None)
    if card.branch_id is not None and card.branch_id != branch_id:
        raise SessionNotRedeemable(field="branch_id", card_branch_id=card.branch_id)
    from orders.models import Order, OrderStatus

    order = await Order.get(id=card.order_id).using_db(conn)
    if order.status not in (OrderStatus.paid, OrderStatus.fulfilled):
        raise SessionNotRedeemable(field="code", order_status=order.status.value)
    query = PackageSession.filter(card_id=card.id, redeemed_at=None, refunded_at=None).using_db(conn)
    if title is not None:
        query = query.filter(title=title)
    for session in await query.order_by("seq"):
        # The conditional update decides: two desks redeeming the same session at once redeem it once.
        won = await PackageSession.filter(id=session.id, redeemed_at=None, refunded_at=None).using_db(conn).update(
            redeemed_at=now, redeemed_branch_id=branch_id, redeemed_by_id=staff_id)
        if won:
            return card, await PackageSession.get(id=session.id).using_db(conn)
    raise SessionNotRedeemable(field="title" if title else "code")


async def sessions_left(conn: BaseDBAsyncClient, card_id: int) -> int:
    """Sessions of the card neither redeemed nor refunded."""
    return await PackageSession.filter(card_id=card_id, redeemed_at=None, refunded_at=None).using_db(conn).count()


async def refund_unused(conn: BaseDBAsyncClient, card_id: int, *, idempotency_key: str) -> tuple[object, bool, int]:
    """Refund a card's unused sessions at what each was actually paid: the sessions are marked refunded and
    one order refund of their value is asked for (idempotent on the key, as every staff refund)."""
    from orders import service
    from orders.models import Refund, RefundStatus

    card = await PackageCard.get_or_none(id=card_id).using_db(conn)
    if card is None:
        raise PackageCardNotFound(card_id=card_id)
    await service.lock_order(conn, order_id=card.order_id)
    existing = await Refund.get_or_none(idempotency_key=idempotency_key).using_db(conn)
    if existing is not None:
        return await _replay(conn, card, existing)
    unused = await PackageSession.filter(card_id=card.id, redeemed_at=None, refunded_at=None).using_db(conn)
    amount = sum(s.value_fen for s in unused)
    if not unused or amount < 1:
        raise NothingToRefund(card_id=card_id)
    # Sessions an ABNORMAL refund gave back keep its id. That refund may still be paid out by hand, and its late
    # SUCCESS takes back the sessions carrying its id: refunding them again now would pay the customer twice.
    earlier = {s.refund_id for s in unused if s.refund_id is not None}
    abnormal = await Refund.filter(id__in=list(earlier), status=RefundStatus.abnormal).using_db(conn).first() \
        if earlier else None
    if abnormal is not None:
        raise EarlierRefundAbnormal(field="card_id", card_id=card_id, refund_id=abnormal.id)
    # The sessions first (a desk redeeming one at this moment loses to this update, or wins and we stop),
    # then the refund; a refund that is refused rolls the whole transaction back, sessions included.
    changed = await PackageSession.filter(id__in=[s.id for s in unused], redeemed_at=None, refunded_at=None).using_db(
        conn).update(refunded_at=clock.now())
    if changed != len(unused):
        # The same key sent twice at once: the first request refunded the sessions and committed after this
        # transaction's snapshot began (the card was read before the order lock), so the plain look-up above
        # missed its refund. A locking read sees it (the row exists: it locks that row only).
        existing = await Refund.filter(idempotency_key=idempotency_key).using_db(conn).select_for_update().first()
        if existing is not None:
            return await _replay(conn, card, existing, seen_unused=[s.id for s in unused])
        raise SessionNotRedeemable("A session was redeemed or refunded meanwhile; look at the card again.", field="card_id")
    refund, replayed = await service.staff_refund(conn, card.order_id, reason="unused_sessions", amount_fen=amount,
                                                  idempotency_key=idempotency_key, for_card_sessions=True)
    await PackageSession.filter(id__in=[s.id for s in unused]).using_db(conn).update(refund_id=refund.id)
    await PackageCard.filter(id=card.id).using_db(conn).update(status=PackageCardStatus.refunded)
    return refund, replayed, len(unused)


async def _replay(conn: BaseDBAsyncClient, card: PackageCard, existing,
                  seen_unused: list[int] | None = None) -> tuple[object, bool, int]:
    """The key's refund, when it is this card's (its sessions carry the refund's id). The key of another card of
    the same order (same order, reason and amount asked) must not answer that card's refund as if this card
    had been refunded: `409 idempotency_key_reused`, nothing changed.

    `seen_unused`: the sessions this transaction's snapshot still shows unused; they are read again by a locking
    read by primary key (the rows exist: no gap is locked), which sees what the refund committed."""
    if seen_unused is None:
        refunded_here = await PackageSession.filter(card_id=card.id, refund_id=existing.id).using_db(conn).count()
    else:
        rows = await PackageSession.filter(id__in=seen_unused).using_db(conn).select_for_update()
        refunded_here = sum(1 for row in rows if row.refund_id == existing.id)
    if existing.order_id != card.order_id or existing.reason != "unused_sessions" or not refunded_here:
        raise RefundKeyReused("This Idempotency-Key was used for another refund (another card, order or reason).",
                              field="Idempotency-Key", refund_id=existing.id, card_id=card.id)
    return existing, True, refunded_here


async def cards_with_unused_sessions(conn: BaseDBAsyncClient, order_id: int, lines) -> list[int] | None:
    """Ids of the order's cards with a session neither redeemed nor refunded (expired ones included: their
    unused sessions are still refunded at what they cost); None when a card line's cards are not created yet
    (the paid-order job has not run: every session of them will be unused)."""
    card_lines = [line.id for line in lines if line.kind == "package_card"]
    if not card_lines:
        return []
    created = set(await PackageCard.filter(line_id__in=[i * 1000 for i in card_lines]).using_db(conn).values_list(
        "line_id", flat=True))
    if len(created) < len(card_lines):  # unit 0 of each line marks its cards as created (create_cards)
        return None
    cards = await PackageCard.filter(order_id=order_id).using_db(conn).values_list("id", flat=True)
    rows = await PackageSession.filter(card_id__in=list(cards), redeemed_at=None, refunded_at=None).using_db(
        conn).values_list("card_id", flat=True)
    return sorted(set(rows))


async def void_unused_for_order(conn: BaseDBAsyncClient, order_id: int, refund_id: int) -> None:
    """The whole order is being refunded: unused sessions of its cards can no longer be redeemed."""
    cards = await PackageCard.filter(order_id=order_id).using_db(conn).values_list("id", flat=True)
    if cards:
        await PackageSession.filter(card_id__in=list(cards), redeemed_at=None, refunded_at=None).using_db(conn).update(
            refunded_at=clock.now(), refund_id=refund_id)
        await PackageCard.filter(id__in=list(cards)).using_db(conn).update(status=PackageCardStatus.refunded)


async def give_back_sessions(conn: BaseDBAsyncClient, line, refund) -> int:
    """A refund that voided sessions of this line's cards ended unpaid (closed, abnormal, refused at WeChat Pay):
    the money never left, so those sessions are unused again and their cards active; a refund of them may be
    asked again. The sessions keep the refund's id (a repeat of its Idempotency-Key still answers that refund);
    a later refund of them writes its own. Runs once per refund (the refund's conditional status update decides)."""
    cards = await PackageCard.filter(line_id__gte=line.id * 1000, line_id__lt=(line.id + 1) * 1000).using_db(
        conn).values_list("id", flat=True)
    if not cards:
        return 0
    voided = PackageSession.filter(card_id__in=list(cards), refund_id=refund.id, redeemed_at=None,
                                   refunded_at__isnull=False).using_db(conn)
    touched = set(await voided.values_list("card_id", flat=True))
    given = await voided.update(refunded_at=None)
    if touched:
        # A refunded card is one whose every unused session was refunded: with sessions unused again, it is not.
        await PackageCard.filter(id__in=list(touched), status=PackageCardStatus.refunded).using_db(conn).update(
            status=PackageCardStatus.active)
    return given


async def void_again(conn: BaseDBAsyncClient, line, refund) -> int:
    """An ABNORMAL refund that gave this line's sessions back (`give_back_sessions`) was paid after all: the
    sessions still unused and still carrying its id are refunded again, and their cards too. A session redeemed
    in between stays redeemed (the customer had it and its money): logged for finance."""
    import structlog

    cards = await PackageCard.filter(line_id__gte=line.id * 1000, line_id__lt=(line.id + 1) * 1000).using_db(
        conn).values_list("id", flat=True)
    if not cards:
        return 0
    ours = PackageSession.filter(card_id__in=list(cards), refund_id=refund.id).using_db(conn)
    unused = ours.filter(redeemed_at=None, refunded_at=None)
    touched = set(await unused.values_list("card_id", flat=True))
    voided = await unused.update(refunded_at=clock.now())
    if touched:
        await PackageCard.filter(id__in=list(touched)).using_db(conn).update(status=PackageCardStatus.refunded)
    redeemed = await ours.filter(redeemed_at__isnull=False).count()
    if redeemed:
        structlog.get_logger(__name__).error("orders.refund_paid_after_sessions_redeemed", refund_id=refund.id,
                                             sessions=redeemed)
    return voided
