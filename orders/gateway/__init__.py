"""The payment gateway interface (WeChat Pay API v3 for mini-programs, or the local sandbox) and its values.

Everything that talks to the gateway is called outside any database transaction; amounts are fen.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

import msgspec

from kernel.errors import DomainError, UpstreamUnavailable
from kernel.settings import PaySettings, get_settings


class PrepayRequest(msgspec.Struct, frozen=True):
    out_trade_no: str
    description: str
    total_fen: int
    payer_openid: str
    expires_at: datetime


class RequestPaymentParams(msgspec.Struct, frozen=True):
    """Exactly what wx.requestPayment takes (field names as WeChat spells them)."""

    appId: str
    timeStamp: str
    nonceStr: str
    package: str
    signType: str
    paySign: str


class TradeState(msgspec.Struct, frozen=True):
    """The gateway's view of one trade (查询订单), the same shape as a payment notification's resource."""

    out_trade_no: str
    trade_state: str  # SUCCESS, NOTPAY, CLOSED, REFUND, USERPAYING, PAYERROR, REVOKED
    mchid: str = ""
    appid: str = ""
    transaction_id: str | None = None
    total_fen: int | None = None
    payer_total_fen: int | None = None
    payer_openid: str | None = None
    success_time: str | None = None

    @classmethod
    def from_resource(cls, resource: Mapping[str, Any]) -> "TradeState":
        amount = resource.get("amount") or {}
        payer = resource.get("payer") or {}
        return cls(
            out_trade_no=str(resource.get("out_trade_no", "")),
            trade_state=str(resource.get("trade_state", "")),
            mchid=str(resource.get("mchid", "")),
            appid=str(resource.get("appid", "")),
            transaction_id=resource.get("transaction_id") or None,
            total_fen=_int_or_none(amount.get("total")),
            payer_total_fen=_int_or_none(amount.get("payer_total")),
            payer_openid=payer.get("openid"),
            success_time=resource.get("success_time"),
        )


class RefundRequest(msgspec.Struct, frozen=True):
    out_trade_no: str
    transaction_id: str | None
    out_refund_no: str
    refund_fen: int
    total_fen: int
    reason: str


class RefundResult(msgspec.Struct, frozen=True):
    out_refund_no: str
    status: str  # SUCCESS, PROCESSING, CLOSED, ABNORMAL
    refund_id: str | None = None
    refund_fen: int | None = None
    mchid: str = ""
    out_trade_no: str = ""

    @classmethod
    def from_resource(cls, resource: Mapping[str, Any]) -> "RefundResult":
        amount = resource.get("amount") or {}
        return cls(
            out_refund_no=str(resource.get("out_refund_no", "")),
            # The refund API answers `status`, the refund notification `refund_status`.
            status=str(resource.get("status") or resource.get("refund_status") or ""),
            refund_id=resource.get("refund_id"),
            refund_fen=_int_or_none(amount.get("refund")),
            mchid=str(resource.get("mchid", "")),
            out_trade_no=str(resource.get("out_trade_no", "")),
        )


class Notification(msgspec.Struct, frozen=True):
    """A verified, decrypted notification (支付/退款结果通知)."""

    id: str
    event_type: str
    resource: dict[str, Any]


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


class GatewayUnavailable(UpstreamUnavailable):
    """The gateway did not answer, answered 5xx or asked us to slow down: try again later."""

    code = "payment_gateway_unavailable"
    default_message = "The payment service did not answer; try again shortly."


class GatewayRefused(DomainError):
    """The gateway refused the request for good (its error code is kept)."""

    status_code = 502
    code = "payment_gateway_refused"
    default_message = "The payment service refused the request."

    def __init__(self, gateway_code: str, message: str = "", http_status: int = 400) -> None:
        super().__init__(message or f"payment gateway refused: {gateway_code}",
                         gateway_code=gateway_code, http_status=http_status)
        self.gateway_code = gateway_code


class NotificationRejected(Exception):
    """A notification that must not be applied: forged, stale, undecryptable or malformed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@runtime_checkable
class PaymentGateway(Protocol):
    mode: str
    mchid: str
    appid: str

    async def prepay(self, request: PrepayRequest) -> str:
        """JSAPI prepay (下单); returns the prepay_id."""

    def request_payment_params(self, prepay_id: str) -> RequestPaymentParams:
        """The signed parameters for wx.requestPayment (no network call)."""

    async def query_trade(self, out_trade_no: str) -> TradeState: ...

    async def close_trade(self, out_trade_no: str) -> None: ...

    async def refund(self, request: RefundRequest) -> RefundResult: ...

    async def query_refund(self, out_refund_no: str) -> RefundResult: ...

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> Notification:
        """Verify the signature over the raw body, check the timestamp, decrypt the resource."""

    async def aclose(self) -> None: ...


def build_gateway(settings: PaySettings) -> PaymentGateway:
    if settings.mode == "sandbox":
        from orders.gateway.sandbox import SandboxGateway

        return SandboxGateway(settings)
    if settings.mode == "wechatpay":
        from orders.gateway.wechatpay import WeChatPayGateway

        return WeChatPayGateway.from_settings(settings)
    raise ValueError(f"PAY_MODE must be 'sandbox' or 'wechatpay', not {settings.mode!r}")


@lru_cache(maxsize=1)
def default_gateway() -> PaymentGateway:
    """The process-wide gateway built from settings (the API and each worker process keep one)."""
    return build_gateway(get_settings().pay)


def gateway_from(holder: Mapping[str, Any] | Any) -> PaymentGateway:
    """The gateway a job ctx (dict) or the app state carries, else the process default.

    Tests put a gateway pointed at a local fake WeChat Pay server into the worker ctx / app state.
    """
    found = holder.get("payment_gateway") if isinstance(holder, Mapping) else getattr(holder, "payment_gateway", None)
    return found or default_gateway()
