"""Checkout: the quote every purchase shows before paying, placing the order with each payment source,
and unwinding those sources when the order is closed unpaid or refunded.

The steps, always in this order (`POST /app/orders/quote` shows each one):

1. list price  2. member price of the customer's tier (a switched-off tier gives nothing)  3. one coupon
4. points as cash (the rate and the largest share of the order are the checkout rule)  5. stored value
6. WeChat Pay for the rest.

Rounding, stated once: every amount is integer fen; where a step derives money from a rate (a percentage
coupon, the points cap) it rounds down to the fen, so the customer is never charged a fraction and never
given one; the points needed for a cash amount round up (no fen is given for less than its points).

total_fen = coupon_fen + points_cash_fen + stored_value_fen + wechat_fen, and the lines (at member price)
add up to total_fen. A refund unwinds in reverse: WeChat Pay first, then stored value, then points; the
coupon is not money and comes back whole when the order is refunded in full (or closed unpaid).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timezone

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError

from kernel import clock
from kernel.errors import ValidationFailed
from orders import catalogue, coupons, partners, stored_value
from orders.errors import OrderKeyReused
from orders.placing import MAX_ORDER_FEN
from orders.product_models import CheckoutRule, Product, ProductKind, RefundPart

LINE_KIND = {ProductKind.service: "package_card", ProductKind.package: "package_card",
             ProductKind.course: "package_card", ProductKind.product: "goods", ProductKind.topup: "topup"}
ROUNDING = ("Integer fen throughout; money derived from a rate (percentage coupon, points cap) is rounded down "
            "to the fen; the points for a cash amount are rounded up.")


@dataclass
class QuoteLine:
    product: Product
    quantity: int
    list_unit_fen: int
    unit_fen: int  # after the member price


@dataclass
class Quote:
    lines: list[QuoteLine]
    list_fen: int
    member_discount_fen: int
    coupon_id: int | None
    coupon_fen: int
    points_per_yuan: int
    points_available: int
    points_used: int
    points_cash_fen: int
    stored_value_available_fen: int
    stored_value_fen: int
    wechat_fen: int
    steps: list[tuple[str, int, int]] = field(default_factory=list)  # (step, change, still to pay)

    @property
    def total_fen(self) -> int:
        return self.list_fen - self.member_discount_fen


async def checkout_rule(conn: BaseDBAsyncClient) -> CheckoutRule:
    rule = await CheckoutRule.get_or_none(id=1).using_db(conn)
    return rule or CheckoutRule(id=1, points_per_yuan=100, points_max_share_bp=5000, updated_at=clock.now())


async def set_checkout_rule(conn: BaseDBAsyncClient, *, points_per_yuan: int, points_max_share_bp: int) -> CheckoutRule:
    """Write the one rule row (id 1) with one upsert: two first writes at once both succeed, the later one wins.

    An update then an insert when it changed nothing let two first writes both insert, and the second was a
    duplicate key (a 500). The upsert waits on the first writer's row instead."""
    if conn.capabilities.dialect == "sqlite":
        sql = ("INSERT INTO shop_checkout_rule (id, points_per_yuan, points_max_share_bp, updated_at) "
               "VALUES (1, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET points_per_yuan = excluded.points_per_yuan, "
               "points_max_share_bp = excluded.points_max_share_bp, updated_at = excluded.updated_at")
    else:
        sql = ("INSERT INTO shop_checkout_rule (id, points_per_yuan, points_max_share_bp, updated_at) "
               "VALUES (1, %s, %s, %s) ON DUPLICATE KEY UPDATE points_per_yuan = VALUES(points_per_yuan), "
               "points_max_share_bp = VALUES(points_max_share_bp), updated_at = VALUES(updated_at)")
    # Instants are stored as naive UTC (Tortoise with use_tz), as every raw write of the project does.
    now = clock.now().astimezone(timezone.utc).replace(tzinfo=None)
    await conn.execute_query(sql, [points_per_yuan, points_max_share_bp, now])
    return await checkout_rule(conn)


def points_cash(after_coupon: int, points_available: int, points_limit: int | None, rule: CheckoutRule) -> tuple[int, int]:
    """(points used, cash fen) for step 4: capped by the rule's share of the order, the balance and the ask."""
    usable = points_available if points_limit is None else min(points_limit, points_available)
    cap = after_coupon * rule.points_max_share_bp // 10_000
    cash = min(cap, usable * 100 // rule.points_per_yuan)
    points = -(-cash * rule.points_per_yuan // 100)  # ceil
    return points, cash


async def quote(conn: BaseDBAsyncClient, customer_id: int, items: list[tuple[int, int]], *, coupon_id: int | None,
                points_limit: int | None, use_points: bool, use_stored_value: bool,
                points_available: int | None = None, points_account=None) -> Quote:
    """Price an order through the six steps. `points_available` and `points_account` are passed by
    `place_order`, which has locked the customer's points; a plain quote reads them."""
    if not items:
        raise ValidationFailed("An order needs at least one item.", field="items")
    products = await catalogue.products_for_sale(conn, [pid for pid, _ in items])
    kinds = {products[pid].kind for pid, _ in items}
    if ProductKind.topup in kinds and (len(items) > 1 or items[0][1] != 1):
        raise ValidationFailed("A top-up is bought on its own, one at a time.", field="items")
    topup = ProductKind.topup in kinds
    if topup and (coupon_id or use_points or use_stored_value):
        # The principal of stored value must be money actually paid.
        raise ValidationFailed("A top-up is paid by WeChat Pay only.", field="coupon_id" if coupon_id else
                               "use_points" if use_points else "use_stored_value")
    tier_id = await partners.member_tier(conn, customer_id, points_account)
    prices = await catalogue.member_prices_of(conn, list(products))
    lines = []
    for pid, quantity in items:
        product = products[pid]
        unit = prices[pid].get(tier_id, product.price_fen) if tier_id is not None else product.price_fen
        lines.append(QuoteLine(product, quantity, product.price_fen, min(unit, product.price_fen)))
    list_fen = sum(line.list_unit_fen * line.quantity for line in lines)
    member_fen = sum(line.unit_fen * line.quantity for line in lines)
    if member_fen > MAX_ORDER_FEN:
        # The same refusal the purchase gives (placing.create_order): a quote never promises an order that
        # cannot be placed.
        raise ValidationFailed("The order total is too large for one order.", field="quantity",
                               max_total_fen=MAX_ORDER_FEN)
    steps = [("list_price", list_fen, list_fen), ("member_price", member_fen - list_fen, member_fen)]
    rest = member_fen
    coupon_fen = 0
    if coupon_id is not None:
        _, template = await coupons.usable_coupon(conn, customer_id, coupon_id)
        coupon_fen = min(coupons.discount_for(template, [(ln.product, ln.quantity, ln.unit_fen) for ln in lines]),
                         rest)
        rest -= coupon_fen
    steps.append(("coupon", -coupon_fen, rest))
    rule = await checkout_rule(conn)
    if points_available is None:
        from points_mall.ledger import spendable

        points_available = await spendable(conn, customer_id)
    points_used, points_fen = points_cash(rest, points_available, points_limit, rule) if use_points else (0, 0)
    rest -= points_fen
    steps.append(("points", -points_fen, rest))
    principal, bonus = await stored_value.balance(conn, customer_id)
    sv_fen = min(rest, principal + bonus) if use_stored_value else 0
    rest -= sv_fen
    steps.append(("stored_value", -sv_fen, rest))
    steps.append(("wechat_pay", -rest, 0))
    return Quote(lines=lines, list_fen=list_fen, member_discount_fen=list_fen - member_fen, coupon_id=coupon_id,
                 coupon_fen=coupon_fen, points_per_yuan=rule.points_per_yuan, points_available=points_available,
                 points_used=points_used, points_cash_fen=points_fen, stored_value_available_fen=principal + bonus,
                 stored_value_fen=sv_fen, wechat_fen=rest, steps=steps)


async def place_order(conn: BaseDBAsyncClient, customer_id: int, items: list[tuple[int, int]], *,
                      coupon_id: int | None, points_limit: int | None, use_points: bool, use_stored_value: bool,
                      expected_wechat_fen: int | None = None, idempotency_key: str | None = None,
                      request_digest: str | None = None):
    """Quote again under the customer's lock and take every source in this one transaction: the coupon
    (conditional update), the points (ledger), the stored value (conditional update). An order with nothing
    left for WeChat Pay is paid at once.

    With an `idempotency_key` (the purchase's header) the customer's order placed under that key is returned
    as it is now, with no quote (`(order, None)`): looked up after the customer's lock, so identical requests
    sent at once queue and all find the first one's order; the key with another `request_digest` (another
    body) is `409 idempotency_key_reused`. The unique (customer, key) index is the backstop."""
    from orders import service
    from orders.models import Order

    points_available, points_account = await partners.lock_points(conn, customer_id)
    if idempotency_key is not None:
        existing = await Order.get_or_none(
            customer_id=customer_id, idempotency_key=idempotency_key).using_db(conn)
        if existing is not None:
            if existing.request_digest != request_digest:
                raise OrderKeyReused(field="Idempotency-Key", order_id=existing.id)
            return existing, None
    q = await quote(conn, customer_id, items, coupon_id=coupon_id, points_limit=points_limit, use_points=use_points,
                    use_stored_value=use_stored_value, points_available=points_available,
                    points_account=points_account)
    if expected_wechat_fen is not None and expected_wechat_fen != q.wechat_fen:
        from orders.errors import QuoteChanged

        raise QuoteChanged(field="expected_wechat_fen", wechat_fen=q.wechat_fen)
    description = q.lines[0].product.name + (f" 等{len(q.lines)}件" if len(q.lines) > 1 else "")
    split = dict(list_fen=q.list_fen, member_discount_fen=q.member_discount_fen, coupon_id=q.coupon_id,
                 coupon_fen=q.coupon_fen, points_used=q.points_used, points_cash_fen=q.points_cash_fen,
                 stored_value_fen=q.stored_value_fen, wechat_fen=q.wechat_fen,
                 idempotency_key=idempotency_key, request_digest=request_digest if idempotency_key else None)
    try:
        order = await service.create_order(
            conn, customer_id=customer_id, description=description, split=split,
            lines=[service.LineSpec(kind=LINE_KIND[ln.product.kind], title=ln.product.name, quantity=ln.quantity,
                                    unit_price_fen=ln.unit_fen, ref_id=ln.product.id) for ln in q.lines],
        )
    except IntegrityError:
        if idempotency_key is None:  # no key to have reused: another unique column (not expected), a logged 500
            raise
        # The key cannot be taken twice while the customer is locked; refuse rather than sell twice.
        raise OrderKeyReused(field="Idempotency-Key") from None
    paid_now = q.wechat_fen == 0
    if q.coupon_id is not None:
        await coupons.take_for_order(conn, q.coupon_id, customer_id, order.id, paid=paid_now)
    if q.points_used:
        await partners.spend_points_as_cash(conn, customer_id=customer_id, order_id=order.id,
                                            points_used=q.points_used)
    if q.stored_value_fen:
        await stored_value.spend(conn, customer_id, order.id, q.stored_value_fen)
    if paid_now:
        await service.mark_paid_without_gateway(conn, order.id)
        return await service.get_order(conn, order.id), q
    # Otherwise the row is the one just created, split included: no need to read it back.
    return order, q


async def on_payment_applied(conn: BaseDBAsyncClient, order) -> None:
    if order.coupon_id is not None:
        await coupons.mark_used(conn, order.coupon_id, order.id)


async def release_sources(conn: BaseDBAsyncClient, order) -> None:
    """The order closed unpaid: its coupon, points and stored value go back (each once, by its ref)."""
    if order.coupon_id is not None:
        await coupons.give_back(conn, order.coupon_id, order.id)
    if order.points_used:
        await partners.give_points_back(conn, order_id=order.id, ref=f"order_points_release:{order.id}",
                                        points_back=None)
    if order.stored_value_fen:
        await stored_value.give_back(conn, order.customer_id, order.id, None, kind="release",
                                     ref=f"release:{order.id}")


# Refund statuses in which the gateway ended a refund without paying it (models.RefundStatus).
ENDED_UNPAID = ("closed", "abnormal", "failed")


async def allocate_refund(conn: BaseDBAsyncClient, order, refund) -> tuple[int, int, int]:
    """Split `refund` (its row just written, under the order lock) over the sources in reverse (WeChat Pay, stored
    value, points): (wechat, stored value, points cash). What earlier refunds took is not offered again: every
    refund still asked or paid (a refund that ended unpaid gave its amount back to the order,
    `refunds.refund_ended_unpaid`).

    The earlier refunds are read by a locking read: a caller whose snapshot began before it took the order lock
    (a job that read the order first, a card refund that read the card) would otherwise miss a refund committed
    meanwhile and ask WeChat Pay for money an earlier refund already asked for. The caller's own row is written
    first, so this read's gap locks cover no insert it still has to make into shop_refund (two refunds of
    neighbouring orders cannot deadlock there). Their stored-value parts are read the same way, and only when the
    order spent stored value (parts of orders without it do not change the split)."""
    from orders.models import Refund, refund_wechat_amount, wechat_amount

    earlier = [r for r in await Refund.filter(order_id=order.id).using_db(conn).select_for_update()
               if r.id != refund.id and r.status not in ENDED_UNPAID]
    sv_taken = 0
    if order.stored_value_fen and earlier:
        parts = await RefundPart.filter(refund_id__in=[r.id for r in earlier], source="stored_value").using_db(
            conn).select_for_update()
        sv_taken = sum(p.amount_fen for p in parts)
    wechat_left = wechat_amount(order) - sum(refund_wechat_amount(r) for r in earlier)
    sv_left = order.stored_value_fen - sv_taken
    amount_fen = refund.amount_fen
    wechat = min(amount_fen, wechat_left)
    sv = min(amount_fen - wechat, sv_left)
    return wechat, sv, amount_fen - wechat - sv


async def record_refund_parts(conn: BaseDBAsyncClient, refund, sv_fen: int, points_fen: int) -> None:
    if sv_fen:
        await RefundPart.create(refund_id=refund.id, source="stored_value", amount_fen=sv_fen, using_db=conn)
    if points_fen:
        await RefundPart.create(refund_id=refund.id, source="points", amount_fen=points_fen, using_db=conn)


async def unwind_refund(conn: BaseDBAsyncClient, order, refund) -> None:
    """The refund is confirmed (once, by its conditional update): give back its stored value and points, and
    the coupon when the order is now refunded in full."""
    for part in await RefundPart.filter(refund_id=refund.id).using_db(conn):
        if part.source == "stored_value":
            await stored_value.give_back(conn, order.customer_id, order.id, part.amount_fen, kind="refund",
                                         ref=f"refund:{refund.out_refund_no}")
        elif part.source == "points":
            # Points in proportion to the cash refunded (rounded down); the last refund returns all that is left.
            all_points_refunded = await _points_cash_refunded(conn, order) >= order.points_cash_fen
            points_back = None if all_points_refunded else part.amount_fen * order.points_used // order.points_cash_fen
            if points_back != 0:
                await partners.give_points_back(conn, order_id=order.id, ref=f"refund:{refund.out_refund_no}",
                                                points_back=points_back)
    from orders.models import OrderStatus

    if order.coupon_id is not None and order.status == OrderStatus.refunded:
        await coupons.give_back(conn, order.coupon_id, order.id)


async def _points_cash_refunded(conn: BaseDBAsyncClient, order) -> int:
    from orders.models import Refund, RefundStatus

    succeeded = await Refund.filter(order_id=order.id, status=RefundStatus.succeeded).using_db(conn).values_list(
        "id", flat=True)
    parts = await RefundPart.filter(refund_id__in=list(succeeded), source="points").using_db(conn) if succeeded else []
    return sum(p.amount_fen for p in parts)


def consumption_fen(order, lines) -> int:
    """What counts as consumption (points, referrals): money paid by WeChat Pay and stored value. A top-up
    itself is not consumption (spending it is); points as cash and coupons are not money spent."""
    if any(line.kind == "topup" for line in lines):
        return 0
    return order.paid_fen + order.stored_value_fen


async def refund_consumption_fen(conn: BaseDBAsyncClient, refund, lines) -> int:
    from orders.models import refund_wechat_amount

    if any(line.kind == "topup" for line in lines):
        return 0
    parts = await RefundPart.filter(refund_id=refund.id, source="stored_value").using_db(conn)
    return refund_wechat_amount(refund) + sum(p.amount_fen for p in parts)
