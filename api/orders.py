"""Order and payment routes: the customer's orders and wx.requestPayment parameters (/app), WeChat Pay
notifications (/payments), the sandbox trigger (/sandbox, sandbox gateway only), finance views (/admin)."""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Annotated

import msgspec
import structlog
from litestar.openapi import ResponseSpec
from litestar import Controller, MediaType, Request, Response
from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from tortoise.backends.base.client import BaseDBAsyncClient

from api.deps import Db, Limit, Offset
from api.handlers import get, post
from api.security import customer_guard, provide_customer_id, provide_staff, staff_only
from orders import checkout, finance, payments, service
from orders.product_schemas import CheckoutRequest, PurchaseRequest, QuoteOut
from orders.gateway import PaymentGateway, RequestPaymentParams, gateway_from
from orders.models import OrderStatus
from orders.schemas import (
    FinanceOrderDetail,
    FinanceOrderPage,
    OrderOut,
    OrderPage,
    RefundOut,
    SandboxPaymentResult,
    StaffRefundCreate,
)
from kernel.identity.service import audit
from kernel.identity.tokens import Principal
from kernel.settings import Settings

log = structlog.get_logger(__name__)

RefundIdempotencyKey = Annotated[
    str,
    Parameter(header="Idempotency-Key", min_length=8, max_length=64, pattern=r"^[A-Za-z0-9._:\-]+$",
              description="A key the console generates per refund and repeats on retry: the same key returns "
                          "the same refund (200), a new key asks for a new refund (201)"),
]


PurchaseIdempotencyKey = Annotated[
    str | None,
    Parameter(header="Idempotency-Key", required=False, min_length=8, max_length=64,
              pattern=r"^[A-Za-z0-9._:\-]+$",
              description="Optional (older clients send none): a key the mini-program generates per "
                          "purchase and repeats on retry, kept per customer; the same key returns the same "
                          "order (200)"),
]


async def provide_gateway(state: State) -> PaymentGateway:
    return gateway_from(state)


class CustomerOrderController(Controller):
    path = "/app/orders"
    tags = ["customer: orders"]
    guards = [customer_guard]
    dependencies = {"customer_id": Provide(provide_customer_id), "gateway": Provide(provide_gateway)}

    @get("/", summary="My orders, newest first")
    async def list_orders(self, db: Db, customer_id: int, limit: Limit, offset: Offset,
                          status: OrderStatus | None = None) -> OrderPage:
        total, orders = await db.run(service.customer_orders, customer_id, status=status, limit=limit, offset=offset)
        items = [OrderOut.of(order, lines) for order, lines in orders]
        return OrderPage(total=total, limit=limit, offset=offset, items=items)

    @post("/quote", status_code=HTTP_200_OK,
          summary="Every checkout step before paying: list price, member price, coupon, points, stored value, WeChat Pay")
    async def quote(self, db: Db, customer_id: int, data: CheckoutRequest) -> QuoteOut:
        q = await db.run(checkout.quote, customer_id, [(i.product_id, i.quantity) for i in data.items],
                         coupon_id=data.coupon_id, points_limit=data.max_points, use_points=data.use_points,
                         use_stored_value=data.use_stored_value)
        return QuoteOut.of(q)

    @post("/", status_code=HTTP_201_CREATED,
          summary="Buy from the catalogue: the sources are taken now, WeChat Pay (POST .../pay) for the rest",
          description="Send an `Idempotency-Key` (optional, recommended): a retry with the same key and "
                      "body returns the same order as it is now (200) and takes nothing again; the same key "
                      "with another body is `409 idempotency_key_reused`. Without a key each call is a new "
                      "order.",
          responses={200: ResponseSpec(data_container=OrderOut,
                                       description="The order this key already placed, as it is now")})
    async def purchase(self, db: Db, customer_id: int, data: PurchaseRequest,
                       idempotency_key: PurchaseIdempotencyKey = None) -> Response[OrderOut]:
        # The body as decoded (defaults filled in), so a retry that spells the same purchase differently
        # (a default written out, keys in another order) is still the same purchase.
        digest = None if idempotency_key is None else hashlib.sha256(msgspec.json.encode(data)).hexdigest()

        async def work(conn: BaseDBAsyncClient) -> tuple[OrderOut, bool]:
            order, placed = await checkout.place_order(
                conn, customer_id, [(i.product_id, i.quantity) for i in data.items], coupon_id=data.coupon_id,
                points_limit=data.max_points, use_points=data.use_points, use_stored_value=data.use_stored_value,
                expected_wechat_fen=data.expected_wechat_fen, idempotency_key=idempotency_key,
                request_digest=digest)
            return OrderOut.of(order, await service.lines_of(conn, order.id)), placed is not None

        view, created = await db.run(work)
        return Response(msgspec.to_builtins(view), status_code=HTTP_201_CREATED if created else HTTP_200_OK)

    @get("/{order_id:int}", summary="One of my orders")
    async def get_order(self, db: Db, customer_id: int, order_id: int) -> OrderOut:
        async def work(conn: BaseDBAsyncClient):
            order = await service.get_customer_order(conn, customer_id, order_id)
            return OrderOut.of(order, await service.lines_of(conn, order.id))

        return await db.run(work)

    @post("/{order_id:int}/cancel", status_code=HTTP_200_OK,
          summary="Cancel my unpaid order now: the coupon, points and stored value it took come back",
          description="Only an order waiting for payment: a paid one is `409 order_already_paid` (ask for a "
                      "refund), one being paid right now `409 order_being_paid`. Cancelling a closed order "
                      "again answers the same closed order and gives nothing back twice.")
    async def cancel(self, customer_id: int, order_id: int, gateway: PaymentGateway, db: Db) -> OrderOut:
        order = await payments.cancel_by_customer(gateway, customer_id, order_id)
        return OrderOut.of(order, await db.run(service.lines_of, order.id))

    @post("/{order_id:int}/pay", status_code=HTTP_200_OK, summary="Parameters for wx.requestPayment")
    async def pay(self, customer_id: int, order_id: int, gateway: PaymentGateway) -> RequestPaymentParams:
        return await payments.start_payment(gateway, customer_id, order_id)


def _wechat_answer(result: payments.NotifyResult) -> Response:
    # WeChat Pay reads 2xx as "received"; anything else makes it deliver the notification again.
    if result.accepted:
        return Response(content=None, status_code=204)
    return Response({"code": "FAIL", "message": result.outcome}, status_code=result.http_status,
                    media_type=MediaType.JSON)


# A handled notification is answered 204 with no body (WeChat Pay reads any 2xx as "received").
_ACCEPTED = {204: ResponseSpec(data_container=None, description="Notification received and applied (or already applied)")}


def _wechat_unavailable() -> Response:
    return Response({"code": "FAIL", "message": "temporarily unavailable"}, status_code=503, media_type=MediaType.JSON)


class PaymentNotificationController(Controller):
    path = "/payments/wechat"
    tags = ["payments: WeChat Pay notifications"]
    dependencies = {"gateway": Provide(provide_gateway)}

    @post("/notify", summary="Payment result notification (支付结果通知)", responses=_ACCEPTED)
    async def notify(self, request: Request, gateway: PaymentGateway) -> Response:
        body = await request.body()  # the raw bytes: the signature covers them exactly
        try:
            result = await payments.receive_payment_notification(gateway, dict(request.headers), body)
        except Exception:  # never a 500: WeChat retries a 503 later, and the error is logged
            log.exception("orders.notify_failed")
            return _wechat_unavailable()
        return _wechat_answer(result)

    @post("/refund-notify", summary="Refund result notification (退款结果通知)", responses=_ACCEPTED)
    async def refund_notify(self, request: Request, gateway: PaymentGateway) -> Response:
        body = await request.body()
        try:
            result = await payments.receive_refund_notification(gateway, dict(request.headers), body)
        except Exception:
            log.exception("orders.refund_notify_failed")
            return _wechat_unavailable()
        return _wechat_answer(result)


class SandboxPaymentController(Controller):
    """Only mounted with the sandbox gateway: stands in for the customer paying inside WeChat."""

    path = "/sandbox/payments"
    tags = ["sandbox"]
    guards = [customer_guard]
    dependencies = {"customer_id": Provide(provide_customer_id), "gateway": Provide(provide_gateway)}

    @post("/{out_trade_no:str}/succeed", status_code=HTTP_200_OK,
          summary="Pay my order in the sandbox: a signed notification goes through the notify path")
    async def succeed(self, customer_id: int, out_trade_no: str, gateway: PaymentGateway) -> SandboxPaymentResult:
        result, order = await payments.pay_in_sandbox(gateway, customer_id, out_trade_no)
        return SandboxPaymentResult(outcome=result.outcome, order_id=order.id, status=order.status)


class FinanceOrderController(Controller):
    path = "/admin/orders"
    tags = ["staff: finance"]
    guards = [staff_only("finance")]
    dependencies = {"staff": Provide(provide_staff)}

    @get("/", summary="Orders by status and creation date (local, inclusive), with totals")
    async def list_orders(
        self, db: Db,
        limit: Limit,
        offset: Offset,
        status: OrderStatus | None = None,
        day_from: Annotated[date | None, Parameter(query="from")] = None,
        day_to: Annotated[date | None, Parameter(query="to")] = None,
    ) -> FinanceOrderPage:
        async def work(conn: BaseDBAsyncClient):
            query = finance.filtered(conn, status=status, day_from=day_from, day_to=day_to)
            totals = await finance.totals(query)
            orders = await query.order_by("-id").offset(offset).limit(limit)
            return totals, orders

        totals, orders = await db.run(work)
        return FinanceOrderPage(total=totals.orders, limit=limit, offset=offset, totals=totals,
                                items=[finance.row_of(o) for o in orders])

    @get("/export.csv", summary="CSV export of the same selection, with a TOTAL row", media_type="text/csv")
    async def export(
        self, db: Db,
        staff: Principal,
        status: OrderStatus | None = None,
        day_from: Annotated[date | None, Parameter(query="from")] = None,
        day_to: Annotated[date | None, Parameter(query="to")] = None,
    ) -> Response:
        async def work(conn: BaseDBAsyncClient):
            text = await finance.export_csv(finance.filtered(conn, status=status, day_from=day_from, day_to=day_to))
            await audit(conn, staff.id, "orders.export", "order_export", "-",
                        {"status": status.value if status else None, "from": str(day_from or ""),
                         "to": str(day_to or "")})
            return text

        text = await db.run(work)
        return Response(text, media_type="text/csv",  # Litestar adds "; charset=utf-8" to text/* types
                        headers={"Content-Disposition": 'attachment; filename="orders.csv"'})

    @get("/{order_id:int}", summary="An order with its lines, refunds and payment events")
    async def detail(self, db: Db, order_id: int) -> FinanceOrderDetail:
        return await db.run(finance.order_detail, order_id)

    @post("/{order_id:int}/refunds", status_code=HTTP_201_CREATED,
          summary="Refund all or part of a paid order (send an Idempotency-Key; a retry returns the same refund)",
          responses={200: ResponseSpec(data_container=RefundOut, description="The refund this key already asked for")})
    async def refund(self, db: Db, order_id: int, data: StaffRefundCreate, staff: Principal,
                     idempotency_key: RefundIdempotencyKey) -> Response[RefundOut]:
        async def work(conn: BaseDBAsyncClient) -> tuple[RefundOut, bool]:
            refund, replayed = await service.staff_refund(
                conn, order_id, reason=data.reason.value, amount_fen=data.amount_fen, idempotency_key=idempotency_key
            )
            if not replayed:  # the audit says what happened: a replay refunded nothing
                await audit(conn, staff.id, "orders.refund", "order", order_id,
                            {"reason": data.reason.value, "amount_fen": refund.amount_fen, "note": data.note,
                             "out_refund_no": refund.out_refund_no, "refund_id": refund.id})
            return RefundOut.of(refund), replayed

        view, replayed = await db.run(work)
        return Response(msgspec.to_builtins(view), status_code=HTTP_200_OK if replayed else HTTP_201_CREATED)


ROUTES = [CustomerOrderController, PaymentNotificationController, FinanceOrderController]


def ROUTES_WHEN(settings: Settings) -> list:  # noqa: N802 (the name api/app.py looks for)
    return [SandboxPaymentController] if settings.pay.mode == "sandbox" else []
