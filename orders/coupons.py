"""Coupons (优惠券): templates staff configure, coupons issued to customers (by staff, outreach, the birthday
job, after a visit, or claimed), what a coupon takes off an order, and its life on an order
(available → locked on a pending order → used when paid → available again when the order is closed or
refunded in full)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError

from kernel import clock
from kernel.errors import Conflict, NotFound, ValidationFailed
from kernel.identity.service import lock_customers
from orders.product_models import Coupon, CouponKind, CouponStatus, CouponTemplate, Product

SOURCES = ("staff", "outreach", "birthday", "visit", "claim", "demo")


class CouponTemplateNotFound(NotFound):
    code = "coupon_template_not_found"
    default_message = "No such coupon template."


class CouponNotFound(NotFound):
    code = "coupon_not_found"
    default_message = "No such coupon."


class CouponUnavailable(Conflict):
    code = "coupon_unavailable"
    default_message = "This coupon cannot be used (used, on another order, expired, or not yours)."


class CouponNotApplicable(ValidationFailed):
    code = "coupon_not_applicable"
    default_message = "This coupon does not apply to this order."


class CouponLimitReached(Conflict):
    code = "coupon_limit_reached"
    default_message = "This customer already holds as many of this coupon as allowed."


def _check_template(fields: dict[str, Any]) -> None:
    kind = CouponKind(fields["kind"])
    if kind == CouponKind.cash_off and fields.get("value_fen", 0) < 1:
        raise ValidationFailed("A cash-off coupon takes at least 1 fen off.", field="value_fen")
    if kind == CouponKind.percent_off and not 1 <= fields.get("discount_bp", 0) <= 9999:
        raise ValidationFailed("A percentage is 1 to 9999 basis points off.", field="discount_bp")
    if kind == CouponKind.free_service and not fields.get("free_product_id"):
        raise ValidationFailed("A free-service coupon names the product it makes free.", field="free_product_id")


async def create_template(conn: BaseDBAsyncClient, **fields: Any) -> CouponTemplate:
    _check_template(fields)
    if fields.get("free_product_id") and not await Product.filter(id=fields["free_product_id"]).using_db(conn).exists():
        raise ValidationFailed("No such product.", field="free_product_id")
    now = clock.now()
    return await CouponTemplate.create(**fields, created_at=now, updated_at=now, using_db=conn)


async def update_template(conn: BaseDBAsyncClient, template_id: int, changes: dict[str, Any]) -> CouponTemplate:
    """Change what may change on a template (texts, validity from now on, limit, claimable, on/off); coupons
    already issued keep their validity."""
    if not await CouponTemplate.filter(id=template_id).using_db(conn).exists():
        raise CouponTemplateNotFound(template_id=template_id)
    if changes:
        await CouponTemplate.filter(id=template_id).using_db(conn).update(**changes, updated_at=clock.now())
    return await get_template(conn, template_id)


async def list_templates(conn: BaseDBAsyncClient, *, limit: int = 500) -> list[CouponTemplate]:
    """The newest templates first (the console's list)."""
    return await CouponTemplate.all().using_db(conn).order_by("-id").limit(limit)


async def get_template(conn: BaseDBAsyncClient, template_id: int) -> CouponTemplate:
    template = await CouponTemplate.get_or_none(id=template_id).using_db(conn)
    if template is None:
        raise CouponTemplateNotFound(template_id=template_id)
    return template


async def issue_coupon(
    conn: BaseDBAsyncClient, customer_id: int, coupon_template_id: int, source: str, source_ref: str
) -> tuple[Coupon, bool]:
    """Give a customer a coupon; idempotent per (source, source_ref, customer): the second call returns the
    first coupon (and False). The contract other rooms use (CRM outreach, the birthday job, after a visit).

    Refuses an inactive template (404), a customer over the template's per-customer limit (409
    coupon_limit_reached). Locks the customer row first, so concurrent issues count each other.
    """
    if source not in SOURCES:
        raise ValidationFailed(f"source must be one of {', '.join(SOURCES)}.", field="source")
    source_ref = str(source_ref)[:64]
    if not await lock_customers(conn, {customer_id}):
        raise NotFound("No such customer.", field="customer_id", customer_id=customer_id)
    # Locking reads from here: they see what the customer lock's previous holder committed, whatever the
    # caller read before (a plain read would see the snapshot of the transaction's first read, which a
    # caller that read the template or another customer first took before that holder committed).
    existing = await _held(conn, customer_id, source=source, source_ref=source_ref)
    if existing:
        return existing[0], False
    template = await get_template(conn, coupon_template_id)
    if not template.is_active:
        raise CouponTemplateNotFound(template_id=coupon_template_id, reason="inactive")
    held = len(await _held(conn, customer_id, template_id=template.id))
    if held >= template.per_customer_limit:
        raise CouponLimitReached(template_id=template.id, limit=template.per_customer_limit)
    now = clock.now()
    until = now + timedelta(days=template.valid_days)
    if template.valid_until is not None:
        until = min(until, template.valid_until)
    try:
        coupon = await Coupon.create(template_id=template.id, customer_id=customer_id, source=source,
                                     source_ref=source_ref, valid_from=now, valid_until=until, created_at=now,
                                     using_db=conn)
    except IntegrityError:  # cannot happen under the customer lock; kept as the database's word
        return (await _held(conn, customer_id, source=source, source_ref=source_ref))[0], False
    return coupon, True


async def _held(conn: BaseDBAsyncClient, customer_id: int, **match: Any) -> list[Coupon]:
    """The customer's coupons matching `match`, by a locking read (model rows: Tortoise drops FOR UPDATE from
    count() and exists())."""
    return await Coupon.filter(customer_id=customer_id, **match).select_for_update().using_db(conn)


async def claim_coupon(conn: BaseDBAsyncClient, customer_id: int, template_id: int) -> Coupon:
    """A customer claims a claimable coupon (领券); the per-customer limit bounds how many."""
    template = await get_template(conn, template_id)
    if not template.claimable or not template.is_active:
        raise CouponTemplateNotFound(template_id=template_id, reason="not claimable")
    await lock_customers(conn, {customer_id})
    claimed = len(await _held(conn, customer_id, template_id=template_id, source="claim"))
    coupon, _ = await issue_coupon(conn, customer_id, template_id, "claim", f"{template_id}:{claimed + 1}")
    return coupon


async def customer_coupons(conn: BaseDBAsyncClient, customer_id: int) -> list[tuple[Coupon, CouponTemplate]]:
    coupons = await Coupon.filter(customer_id=customer_id).using_db(conn).order_by("-id").limit(200)
    templates = {t.id: t for t in await CouponTemplate.filter(
        id__in={c.template_id for c in coupons}).using_db(conn)} if coupons else {}  # type: ignore[attr-defined]
    return [(c, templates[c.template_id]) for c in coupons]  # type: ignore[attr-defined]


def applies_to(template: CouponTemplate, product: Product) -> bool:
    if product.kind == "topup":
        return False
    if template.product_ids and product.id not in template.product_ids:
        return False
    if template.categories and product.category not in template.categories:
        return False
    return True


def discount_for(template: CouponTemplate, lines: list[tuple[Product, int, int]]) -> int:
    """What the coupon takes off, given (product, quantity, member unit price) lines; raises when it does not
    apply. Rounding: a percentage is rounded down to the fen (the one rounding rule of checkout)."""
    eligible = sum(q * unit for p, q, unit in lines if applies_to(template, p))
    if template.kind == CouponKind.free_service:
        units = [unit for p, q, unit in lines if p.id == template.free_product_id]
        if not units:
            raise CouponNotApplicable(field="coupon_id", reason="the free service is not in the order")
        return units[0]
    if eligible <= 0:
        raise CouponNotApplicable(field="coupon_id", reason="nothing in the order is covered")
    if template.kind == CouponKind.cash_off:
        if eligible < template.threshold_fen:
            raise CouponNotApplicable(field="coupon_id", reason="below the threshold",
                                      threshold_fen=template.threshold_fen, eligible_fen=eligible)
        return min(template.value_fen, eligible)
    return eligible * template.discount_bp // 10_000


async def usable_coupon(conn: BaseDBAsyncClient, customer_id: int, coupon_id: int) -> tuple[Coupon, CouponTemplate]:
    coupon = await Coupon.get_or_none(id=coupon_id, customer_id=customer_id).using_db(conn)
    if coupon is None:  # another customer's coupon is indistinguishable from a missing one
        raise CouponNotFound(field="coupon_id")
    now = clock.now()
    if coupon.status != CouponStatus.available or not coupon.valid_from <= now < coupon.valid_until:
        raise CouponUnavailable(field="coupon_id", coupon_id=coupon_id)
    return coupon, await get_template(conn, coupon.template_id)  # type: ignore[attr-defined]


async def take_for_order(conn: BaseDBAsyncClient, coupon_id: int, customer_id: int, order_id: int, *,
                         paid: bool) -> None:
    """Put the coupon on the order with one conditional update: of concurrent orders one wins, once."""
    taken = await Coupon.filter(
        id=coupon_id, customer_id=customer_id, status=CouponStatus.available, valid_until__gt=clock.now()
    ).using_db(conn).update(status=CouponStatus.used if paid else CouponStatus.locked, order_id=order_id,
                            used_at=clock.now() if paid else None)
    if not taken:
        raise CouponUnavailable(field="coupon_id", coupon_id=coupon_id)


async def mark_used(conn: BaseDBAsyncClient, coupon_id: int, order_id: int) -> None:
    await Coupon.filter(id=coupon_id, order_id=order_id, status=CouponStatus.locked).using_db(conn).update(
        status=CouponStatus.used, used_at=clock.now())


async def give_back(conn: BaseDBAsyncClient, coupon_id: int, order_id: int) -> bool:
    """The order was closed or refunded in full: its coupon is the customer's again (once)."""
    return bool(await Coupon.filter(
        id=coupon_id, order_id=order_id, status__in=(CouponStatus.locked, CouponStatus.used)
    ).using_db(conn).update(status=CouponStatus.available, order_id=None, used_at=None))
