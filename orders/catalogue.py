"""The catalogue of what can be bought online (services, products, packages, course cards, top-up plans)
and its member prices: staff create and change products; customers see the active ones."""

from __future__ import annotations

from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from kernel import clock
from kernel.errors import NotFound, ValidationFailed
from orders.product_models import Product, ProductKind, ProductMemberPrice

CARD_KINDS = (ProductKind.service, ProductKind.package, ProductKind.course)


class ProductNotFound(NotFound):
    code = "product_not_found"
    default_message = "No such product (or it is not on sale)."


def _check(kind: ProductKind, fields: dict[str, Any]) -> None:
    items = fields.get("items") or []
    if kind in CARD_KINDS:
        if not items:
            raise ValidationFailed("A service, package or course lists the sessions it holds.", field="items")
        if kind in (ProductKind.service, ProductKind.course) and len(items) != 1:
            raise ValidationFailed("A service or course card holds one service.", field="items")
        if kind == ProductKind.service and items[0]["sessions"] != 1:
            raise ValidationFailed("A service is one session; sell several as a course.", field="items[0].sessions")
    elif items:
        raise ValidationFailed("Only services, packages and courses hold sessions.", field="items")
    if kind != ProductKind.topup and fields.get("topup_bonus_fen"):
        raise ValidationFailed("Only a top-up plan gives a bonus.", field="topup_bonus_fen")
    for i, mp in enumerate(fields.get("member_prices") or []):
        if mp["price_fen"] > fields["price_fen"]:
            raise ValidationFailed("A member price is never above the list price.",
                                   field=f"member_prices[{i}].price_fen")
        if kind == ProductKind.topup:
            raise ValidationFailed("A top-up plan has no member price (its principal is real money).",
                                   field="member_prices")


async def create_product(conn: BaseDBAsyncClient, **fields: Any) -> Product:
    kind = ProductKind(fields["kind"])
    _check(kind, fields)
    member_prices = fields.pop("member_prices", None) or []
    now = clock.now()
    product = await Product.create(**fields, created_at=now, updated_at=now, using_db=conn)
    await _set_member_prices(conn, product, member_prices)
    return product


async def _set_member_prices(conn: BaseDBAsyncClient, product: Product, member_prices: list[dict]) -> None:
    await ProductMemberPrice.filter(product_id=product.id).using_db(conn).delete()
    if member_prices:
        await ProductMemberPrice.bulk_create(
            [ProductMemberPrice(product_id=product.id, tier_id=mp["tier_id"], price_fen=mp["price_fen"])
             for mp in member_prices], using_db=conn)


async def update_product(conn: BaseDBAsyncClient, product_id: int, changes: dict[str, Any]) -> Product:
    product = await Product.filter(id=product_id).using_db(conn).select_for_update().first()
    if product is None:
        raise ProductNotFound(product_id=product_id)
    member_prices = changes.pop("member_prices", None)
    merged = {"items": product.items, "price_fen": product.price_fen, "topup_bonus_fen": product.topup_bonus_fen,
              **changes}
    if member_prices is not None:
        merged["member_prices"] = member_prices
    _check(product.kind, merged)
    if changes:
        await Product.filter(id=product_id).using_db(conn).update(**changes, updated_at=clock.now())
    if member_prices is not None:
        await _set_member_prices(conn, product, member_prices)
    return await Product.get(id=product_id).using_db(conn)


async def member_prices_of(conn: BaseDBAsyncClient, product_ids: list[int]) -> dict[int, dict[int, int]]:
    """{product id: {tier id: price}}"""
    prices: dict[int, dict[int, int]] = {pid: {} for pid in product_ids}
    if product_ids:
        for mp in await ProductMemberPrice.filter(product_id__in=product_ids).using_db(conn):
            prices[mp.product_id][mp.tier_id] = mp.price_fen  # type: ignore[attr-defined]
    return prices


async def list_products(conn: BaseDBAsyncClient, *, active_only: bool, kind: ProductKind | None = None,
                        limit: int = 200, offset: int = 0, newest_first: bool = False) -> tuple[int, list[Product]]:
    """Customers read the shelf in catalogue order (oldest first); staff read it newest first, where what they
    just added or are about to change sits."""
    query = Product.all().using_db(conn)
    if active_only:
        query = query.filter(is_active=True)
    if kind is not None:
        query = query.filter(kind=kind)
    return await query.count(), await query.order_by("-id" if newest_first else "id").offset(offset).limit(limit)


async def products_for_sale(conn: BaseDBAsyncClient, product_ids: list[int]) -> dict[int, Product]:
    found = {p.id: p for p in await Product.filter(id__in=product_ids, is_active=True).using_db(conn)}
    for i, pid in enumerate(product_ids):
        if pid not in found:
            raise ProductNotFound(field=f"items[{i}].product_id", product_id=pid)
    return found


def sessions_of(product: Product) -> int:
    return sum(int(item["sessions"]) for item in product.items)
