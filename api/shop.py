"""Money-product routes: the catalogue (customers read, campaign staff manage), coupons, stored value,
package and course cards (front desk redeems, finance refunds unused sessions), checkout rules and the
prepaid liability. The checkout itself (quote, purchase) is on /app/orders (api/orders.py)."""

from __future__ import annotations

import hashlib
from datetime import date, datetime, time, timedelta
from typing import Annotated

import msgspec
from litestar import Controller, Response
from litestar.di import Provide
from litestar.openapi import ResponseSpec
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from tortoise.backends.base.client import BaseDBAsyncClient

from api.branches import require_branches
from api.deps import Db, Limit, Offset
from api.handlers import get, patch, post, put
from api.orders import RefundIdempotencyKey
from api.security import customer_guard, provide_customer_id, provide_staff, staff_only
from kernel import clock
from kernel.errors import NotFound
from kernel.identity.service import audit
from kernel.identity.tokens import Principal
from orders import catalogue, checkout, coupons, package_cards, stored_value
from orders.product_models import ProductKind
from orders.product_schemas import (
    CardRefundOut,
    CheckoutRuleIn,
    CheckoutRuleOut,
    CouponClaim,
    CouponIssue,
    CouponIssueResult,
    CouponOut,
    CouponTemplateCreate,
    CouponTemplateOut,
    CouponTemplateUpdate,
    LiabilityOut,
    PackageCardOut,
    ProductCreate,
    ProductOut,
    ProductPage,
    ProductUpdate,
    SessionRedeem,
    SessionRedeemed,
    StoredValueEntryOut,
    StoredValueOut,
)

SPEND_ORDER = "principal first, then bonus"


async def _page(conn: BaseDBAsyncClient, *, active_only: bool, kind: ProductKind | None, limit: int,
                offset: int) -> ProductPage:
    total, products = await catalogue.list_products(conn, active_only=active_only, kind=kind, limit=limit,
                                                    offset=offset, newest_first=not active_only)
    prices = await catalogue.member_prices_of(conn, [p.id for p in products])
    return ProductPage(total=total, items=[ProductOut.of(p, prices[p.id]) for p in products])


class CustomerShopController(Controller):
    path = "/app/shop"
    tags = ["customer: shop"]
    guards = [customer_guard]
    dependencies = {"customer_id": Provide(provide_customer_id)}

    @get("/products", summary="What can be bought online (services, products, packages, courses, top-ups)")
    async def products(self, db: Db, limit: Limit, offset: Offset, kind: ProductKind | None = None) -> ProductPage:
        return await db.run(_page, active_only=True, kind=kind, limit=limit, offset=offset)

    @get("/coupons", summary="My coupons")
    async def my_coupons(self, db: Db, customer_id: int) -> list[CouponOut]:
        rows = await db.run(coupons.customer_coupons, customer_id)
        return [CouponOut.of(c, t) for c, t in rows]

    @post("/coupons/claim", status_code=HTTP_201_CREATED, summary="Claim a claimable coupon (领券)")
    async def claim(self, db: Db, customer_id: int, data: CouponClaim) -> CouponOut:
        async def work(conn: BaseDBAsyncClient) -> CouponOut:
            coupon = await coupons.claim_coupon(conn, customer_id, data.template_id)
            return CouponOut.of(coupon, await coupons.get_template(conn, data.template_id))

        return await db.run(work)

    @get("/stored-value", summary="My stored value: principal and bonus apart, and the latest entries")
    async def my_stored_value(self, db: Db, customer_id: int) -> StoredValueOut:
        async def work(conn: BaseDBAsyncClient) -> StoredValueOut:
            principal, bonus = await stored_value.balance(conn, customer_id)
            entries = await stored_value.entries_of(conn, customer_id)
            return StoredValueOut(
                principal_fen=principal, bonus_fen=bonus, balance_fen=principal + bonus, spend_order=SPEND_ORDER,
                entries=[StoredValueEntryOut(kind=e.kind, principal_delta_fen=e.principal_delta,
                                             bonus_delta_fen=e.bonus_delta, order_id=e.order_id,
                                             created_at=e.created_at) for e in entries])

        return await db.run(work)

    @get("/package-cards", summary="My package and course cards with their sessions")
    async def my_cards(self, db: Db, customer_id: int) -> list[PackageCardOut]:
        rows = await db.run(package_cards.customer_cards, customer_id)
        return [PackageCardOut.of(c, s) for c, s in rows]


class StaffCatalogueController(Controller):
    path = "/admin/shop"
    tags = ["staff: shop"]
    guards = [staff_only("campaign")]
    dependencies = {"staff": Provide(provide_staff)}

    @get("/products", summary="The catalogue, active or not, newest first")
    async def products(self, db: Db, limit: Limit, offset: Offset, kind: ProductKind | None = None) -> ProductPage:
        return await db.run(_page, active_only=False, kind=kind, limit=limit, offset=offset)

    @post("/products", status_code=HTTP_201_CREATED, summary="Add a product to the catalogue")
    async def create_product(self, db: Db, data: ProductCreate, staff: Principal) -> ProductOut:
        async def work(conn: BaseDBAsyncClient) -> ProductOut:
            if data.branch_id is not None:
                await require_branches(conn, [data.branch_id], field="branch_id")
            fields = msgspec.to_builtins(data)
            product = await catalogue.create_product(conn, **fields)
            await audit(conn, staff.id, "shop.product_create", "product", product.id, {"name": product.name})
            return ProductOut.of(product, (await catalogue.member_prices_of(conn, [product.id]))[product.id])

        return await db.run(work)

    @patch("/products/{product_id:int}", summary="Change a product (price, texts, member prices, on sale)")
    async def update_product(self, db: Db, product_id: int, data: ProductUpdate, staff: Principal) -> ProductOut:
        changes = {k: v for k, v in msgspec.to_builtins(data).items() if v is not None}

        async def work(conn: BaseDBAsyncClient) -> ProductOut:
            product = await catalogue.update_product(conn, product_id, dict(changes))
            await audit(conn, staff.id, "shop.product_update", "product", product_id, changes)
            return ProductOut.of(product, (await catalogue.member_prices_of(conn, [product.id]))[product.id])

        return await db.run(work)

    @get("/checkout-rule", summary="Points as cash: rate and the largest share of an order")
    async def get_rule(self, db: Db) -> CheckoutRuleOut:
        rule = await db.run(checkout.checkout_rule)
        return CheckoutRuleOut(points_per_yuan=rule.points_per_yuan, points_max_share_bp=rule.points_max_share_bp)

    @put("/checkout-rule", summary="Change the points-as-cash rule")
    async def put_rule(self, db: Db, data: CheckoutRuleIn, staff: Principal) -> CheckoutRuleOut:
        async def work(conn: BaseDBAsyncClient):
            rule = await checkout.set_checkout_rule(conn, points_per_yuan=data.points_per_yuan,
                                                    points_max_share_bp=data.points_max_share_bp)
            await audit(conn, staff.id, "shop.checkout_rule", "checkout_rule", 1, msgspec.to_builtins(data))
            return rule

        rule = await db.run(work)
        return CheckoutRuleOut(points_per_yuan=rule.points_per_yuan, points_max_share_bp=rule.points_max_share_bp)

    @get("/coupon-templates", summary="Coupon templates")
    async def templates(self, db: Db) -> list[CouponTemplateOut]:
        return [CouponTemplateOut.of(t) for t in await db.run(coupons.list_templates)]

    @post("/coupon-templates", status_code=HTTP_201_CREATED, summary="Create a coupon template")
    async def create_template(self, db: Db, data: CouponTemplateCreate, staff: Principal) -> CouponTemplateOut:
        async def work(conn: BaseDBAsyncClient):
            template = await coupons.create_template(conn, **msgspec.to_builtins(data, builtin_types=(datetime,)))
            await audit(conn, staff.id, "shop.coupon_template_create", "coupon_template", template.id,
                        {"name": template.name, "kind": template.kind.value})
            return template

        return CouponTemplateOut.of(await db.run(work))

    @patch("/coupon-templates/{template_id:int}",
           summary="Change a coupon template (name, validity from now on, limit, claimable, on or off)")
    async def update_template(self, db: Db, template_id: int, data: CouponTemplateUpdate,
                              staff: Principal) -> CouponTemplateOut:
        changes = {k: v for k, v in msgspec.to_builtins(data, builtin_types=(datetime,)).items() if v is not None}

        async def work(conn: BaseDBAsyncClient):
            template = await coupons.update_template(conn, template_id, dict(changes))
            await audit(conn, staff.id, "shop.coupon_template_update", "coupon_template", template_id,
                        {k: str(v) if isinstance(v, datetime) else v for k, v in changes.items()})
            return template

        return CouponTemplateOut.of(await db.run(work))

    @post("/coupon-templates/{template_id:int}/issue", status_code=HTTP_200_OK,
          summary="Give customers this coupon (send an Idempotency-Key: a retry gives nothing twice)")
    async def issue(self, db: Db, template_id: int, data: CouponIssue, staff: Principal,
                    idempotency_key: RefundIdempotencyKey) -> CouponIssueResult:
        async def work(conn: BaseDBAsyncClient) -> CouponIssueResult:
            issued = held = 0
            refused: list[int] = []
            await coupons.get_template(conn, template_id)
            # The key names one issue of this template: the same key sent for another template is another issue.
            source_ref = f"{template_id}:{hashlib.sha256(idempotency_key.encode()).hexdigest()[:48]}"
            for customer_id in sorted(set(data.customer_ids)):
                try:
                    _, created = await coupons.issue_coupon(conn, customer_id, template_id, "staff", source_ref)
                except (coupons.CouponLimitReached, NotFound):
                    refused.append(customer_id)
                    continue
                issued += created
                held += not created
            await audit(conn, staff.id, "shop.coupon_issue", "coupon_template", template_id,
                        {"issued": issued, "refused": refused, "key": idempotency_key})
            return CouponIssueResult(issued=issued, already_held=held, refused=refused)

        return await db.run(work)


class FinanceStoredValueController(Controller):
    path = "/admin/stored-value"
    tags = ["staff: finance"]
    guards = [staff_only("finance")]

    @get("/liability", summary="Prepaid liability (principal and bonus) at the end of a local day")
    async def liability(self, db: Db, as_of: Annotated[date, Parameter(query="date")]) -> LiabilityOut:
        end = datetime.combine(as_of + timedelta(days=1), time(0), tzinfo=clock.clinic_zone())
        principal, bonus, accounts = await db.run(stored_value.liability, end)
        return LiabilityOut(as_of=as_of, principal_fen=principal, bonus_fen=bonus, total_fen=principal + bonus,
                            accounts=accounts)


class PackageCardDeskController(Controller):
    path = "/admin/package-cards"
    tags = ["staff: front desk"]
    dependencies = {"staff": Provide(provide_staff)}

    @post("/redeem", status_code=HTTP_200_OK, guards=[staff_only("front_desk")],
          summary="Redeem one session of a package or course card at a branch (核销)")
    async def redeem(self, db: Db, data: SessionRedeem, staff: Principal) -> SessionRedeemed:
        async def work(conn: BaseDBAsyncClient) -> SessionRedeemed:
            await require_branches(conn, [data.branch_id], field="branch_id")
            card, session = await package_cards.redeem_session(conn, code=data.code, branch_id=data.branch_id,
                                                               staff_id=staff.id, title=data.title)
            left = await package_cards.sessions_left(conn, card.id)
            await audit(conn, staff.id, "shop.session_redeem", "package_card", card.id,
                        {"seq": session.seq, "branch_id": data.branch_id})
            return SessionRedeemed(card_id=card.id, seq=session.seq, title=session.title, sessions_left=left)

        return await db.run(work)

    @post("/{card_id:int}/refunds", status_code=HTTP_201_CREATED, guards=[staff_only("finance")],
          summary="Refund a card's unused sessions at the price paid per session (send an Idempotency-Key)",
          responses={200: ResponseSpec(data_container=CardRefundOut, description="This key's refund, already asked")})
    async def refund(self, db: Db, card_id: int, staff: Principal,
                     idempotency_key: RefundIdempotencyKey) -> Response[CardRefundOut]:
        async def work(conn: BaseDBAsyncClient):
            refund, replayed, sessions = await package_cards.refund_unused(conn, card_id,
                                                                           idempotency_key=idempotency_key)
            if not replayed:
                await audit(conn, staff.id, "orders.refund", "package_card", card_id,
                            {"amount_fen": refund.amount_fen, "sessions": sessions,
                             "out_refund_no": refund.out_refund_no})
            return CardRefundOut(refund_id=refund.id, out_refund_no=refund.out_refund_no,
                                 amount_fen=refund.amount_fen, sessions_refunded=sessions), replayed

        view, replayed = await db.run(work)
        return Response(msgspec.to_builtins(view), status_code=HTTP_200_OK if replayed else HTTP_201_CREATED)


ROUTES = [CustomerShopController, StaffCatalogueController, FinanceStoredValueController, PackageCardDeskController]
