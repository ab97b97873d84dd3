"""WeChat Pay API v3 for mini-programs (JSAPI), through the maintained `wechatpayv3` SDK's async client.

Public-key mode (微信支付公钥): responses and notifications are verified with the platform public key
from settings, so no platform-certificate download is needed. The SDK's gateway address is
`PAY_API_BASE`, which tests point at a local fake server that speaks the same protocol.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import structlog
from wechatpayv3.async_.type import WeChatPayType
from wechatpayv3.async_ import AsyncWeChatPay
from wechatpayv3.utils import load_public_key

from orders.gateway import (
    GatewayRefused,
    GatewayUnavailable,
    Notification,
    PrepayRequest,
    RefundRequest,
    RefundResult,
    RequestPaymentParams,
    TradeState,
)
from orders.gateway.verify import parse_json, verify_notification
from kernel.settings import PaySettings

log = structlog.get_logger(__name__)

_BEIJING = ZoneInfo("Asia/Shanghai")
# Error codes WeChat Pay documents as "try again later" rather than "this request is wrong".
_TRANSIENT_CODES = {"SYSTEM_ERROR", "SYSTEMERROR", "FREQUENCY_LIMITED", "NOT_ENOUGH", "BANK_ERROR"}


def rfc3339(instant: datetime) -> str:
    """WeChat wants e.g. 2024-06-08T10:34:56+08:00 (Beijing time, no fractions)."""
    return instant.astimezone(_BEIJING).replace(microsecond=0).isoformat()


def _read(path: str) -> str:
    return Path(path).read_text() if path else ""


class WeChatPayGateway:
    mode = "wechatpay"

    def __init__(
        self,
        *,
        mchid: str,
        appid: str,
        merchant_serial_no: str,
        merchant_private_key: str,
        apiv3_key: str,
        platform_public_key: str,
        platform_public_key_id: str,
        notify_url: str,
        refund_notify_url: str,
        api_base: str,
        timeout_seconds: float = 5.0,
        notify_max_age_seconds: int = 300,
    ) -> None:
        self.mchid = mchid
        self.appid = appid
        self._refund_notify_url = refund_notify_url
        self._max_age = notify_max_age_seconds
        self._public_key_id = platform_public_key_id
        self._public_key = load_public_key(platform_public_key)
        self._pay = AsyncWeChatPay(
            wechatpay_type=WeChatPayType.MINIPROG,
            mchid=mchid,
            private_key=merchant_private_key,
            cert_serial_no=merchant_serial_no,
            appid=appid,
            apiv3_key=apiv3_key,
            notify_url=notify_url,
            public_key=platform_public_key,
            public_key_id=platform_public_key_id,
            timeout=(min(3.0, timeout_seconds), timeout_seconds),
        )
        # The SDK keeps its gateway address in its core; there is no constructor argument for it.
        self._pay._core._gate_way = api_base.rstrip("/")
        self._opened = False
        self._open_lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: PaySettings) -> "WeChatPayGateway":
        return cls(
            mchid=settings.mchid,
            appid=settings.appid,
            merchant_serial_no=settings.merchant_serial_no,
            merchant_private_key=_read(settings.merchant_private_key_path),
            apiv3_key=settings.apiv3_key,
            platform_public_key=_read(settings.platform_public_key_path),
            platform_public_key_id=settings.platform_public_key_id,
            notify_url=settings.notify_url,
            refund_notify_url=settings.refund_notify_url,
            api_base=settings.api_base,
            timeout_seconds=settings.timeout_seconds,
            notify_max_age_seconds=settings.notify_max_age_seconds,
        )

    async def _client(self) -> AsyncWeChatPay:
        # The SDK opens its httpx client in __aenter__; we keep it open for the life of the process.
        if not self._opened:
            async with self._open_lock:
                if not self._opened:
                    await self._pay.__aenter__()
                    self._opened = True
        return self._pay

    async def _call(self, operation: str, coro_factory) -> tuple[int, dict[str, Any]]:
        await self._client()
        try:
            status, body = await coro_factory()
        except (httpx.HTTPError, OSError) as exc:
            log.warning("wechatpay.transport_error", operation=operation, error=type(exc).__name__)
            raise GatewayUnavailable(reason=type(exc).__name__) from exc
        except Exception as exc:  # the SDK raises a bare Exception when a response's signature fails
            log.error("wechatpay.response_rejected", operation=operation, error=str(exc)[:200])
            raise GatewayUnavailable(reason="response_not_verified") from exc
        payload = parse_json(body) if isinstance(body, (str, bytes)) and body else {}
        if 200 <= status < 300:
            return status, payload
        code = str(payload.get("code", "")) or f"HTTP_{status}"
        log.info("wechatpay.error", operation=operation, http_status=status, code=code)
        if status >= 500 or status == 429 or code in _TRANSIENT_CODES:
            raise GatewayUnavailable(gateway_code=code, http_status=status)
        raise GatewayRefused(code, str(payload.get("message", "")), http_status=status)

    async def prepay(self, request: PrepayRequest) -> str:
        pay = await self._client()
        _, payload = await self._call(
            "prepay",
            lambda: pay.pay(
                description=request.description,
                out_trade_no=request.out_trade_no,
                amount={"total": request.total_fen, "currency": "CNY"},
                payer={"openid": request.payer_openid},
                time_expire=rfc3339(request.expires_at),
                pay_type=WeChatPayType.MINIPROG,
            ),
        )
        prepay_id = payload.get("prepay_id")
        if not prepay_id:
            raise GatewayUnavailable(reason="no prepay_id")
        return str(prepay_id)

    def request_payment_params(self, prepay_id: str) -> RequestPaymentParams:
        timestamp = str(int(time.time()))
        nonce = secrets.token_hex(16)
        package = f"prepay_id={prepay_id}"
        # paySign is RSA-SHA256 over "appId\ntimeStamp\nnonceStr\npackage\n" with the merchant key.
        signature = self._pay.sign([self.appid, timestamp, nonce, package])
        return RequestPaymentParams(
            appId=self.appid, timeStamp=timestamp, nonceStr=nonce, package=package, signType="RSA", paySign=signature
        )

    async def query_trade(self, out_trade_no: str) -> TradeState:
        pay = await self._client()
        try:
            _, payload = await self._call("query_trade", lambda: pay.query(out_trade_no=out_trade_no))
        except GatewayRefused as exc:
            if exc.gateway_code == "ORDER_NOT_EXIST" or exc.gateway_code == "ORDERNOTEXIST":
                # Never prepaid at WeChat: as good as unpaid.
                return TradeState(out_trade_no=out_trade_no, trade_state="NOTPAY")
            raise
        return TradeState.from_resource(payload)

    async def close_trade(self, out_trade_no: str) -> None:
        pay = await self._client()
        try:
            await self._call("close_trade", lambda: pay.close(out_trade_no=out_trade_no))
        except GatewayRefused as exc:
            if exc.gateway_code in {"ORDER_CLOSED", "ORDER_NOT_EXIST", "ORDERNOTEXIST"}:
                return
            raise

    async def refund(self, request: RefundRequest) -> RefundResult:
        pay = await self._client()
        _, payload = await self._call(
            "refund",
            lambda: pay.refund(
                out_refund_no=request.out_refund_no,
                amount={"refund": request.refund_fen, "total": request.total_fen, "currency": "CNY"},
                transaction_id=request.transaction_id,
                out_trade_no=None if request.transaction_id else request.out_trade_no,
                reason=request.reason[:80] or None,
                notify_url=self._refund_notify_url,
            ),
        )
        return RefundResult.from_resource(payload)

    async def query_refund(self, out_refund_no: str) -> RefundResult:
        pay = await self._client()
        _, payload = await self._call("query_refund", lambda: pay.query_refund(out_refund_no=out_refund_no))
        return RefundResult.from_resource(payload)

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> Notification:
        return verify_notification(
            self._pay,
            public_key=self._public_key,
            public_key_id=self._public_key_id,
            headers=headers,
            body=body,
            max_age_seconds=self._max_age,
        )

    async def aclose(self) -> None:
        if self._opened:
            await self._pay.__aexit__(None, None, None)
            self._opened = False
