"""The sandbox gateway (the embedded default): WeChat Pay's protocol with keys made up locally.

Prepay hands back signed wx.requestPayment parameters; `POST /sandbox/payments/{out_trade_no}/succeed`
asks this gateway for a TRANSACTION.SUCCESS notification, encrypted with the local APIv3 key and signed
with the local "platform" key exactly as WeChat Pay does, and that notification goes through the same
verification and application path as a real one. Refunds succeed at once; nothing leaves the process.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Mapping
from functools import lru_cache

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from wechatpayv3.async_.type import WeChatPayType
from wechatpayv3.async_ import AsyncWeChatPay

from orders.gateway import (
    Notification,
    PrepayRequest,
    RefundRequest,
    RefundResult,
    RequestPaymentParams,
    TradeState,
)
from orders.gateway.verify import verify_notification
from kernel import clock
from kernel.settings import PaySettings, get_settings

SANDBOX_PUBLIC_KEY_ID = "PUB_KEY_ID_SANDBOX"


@lru_cache(maxsize=1)
def _keys() -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]:
    # Generated once per process: the sandbox verifies what it signed itself, in the same process.
    merchant = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    platform = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return merchant, platform


def _pem_private(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _pem_public(key: rsa.RSAPrivateKey) -> str:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def _apiv3_key() -> str:
    # 32 characters, as WeChat's APIv3 keys are; derived so every process of one deployment agrees.
    secret = get_settings().app.secret_key.encode()
    return hashlib.sha256(b"sandbox apiv3 key:" + secret).hexdigest()[:32]


class SandboxGateway:
    mode = "sandbox"

    def __init__(self, settings: PaySettings) -> None:
        self.mchid = settings.mchid
        self.appid = settings.appid
        self._max_age = settings.notify_max_age_seconds
        merchant, platform = _keys()
        self._platform = platform
        self._apiv3 = _apiv3_key()
        # The SDK object is used only for what needs no network: paySign and notification checks.
        self._sdk = AsyncWeChatPay(
            wechatpay_type=WeChatPayType.MINIPROG,
            mchid=self.mchid,
            private_key=_pem_private(merchant),
            cert_serial_no="SANDBOX_MERCHANT_SERIAL",
            appid=self.appid,
            apiv3_key=self._apiv3,
            notify_url=settings.notify_url,
            public_key=_pem_public(platform),
            public_key_id=SANDBOX_PUBLIC_KEY_ID,
        )
        self._platform_public = platform.public_key()

    async def prepay(self, request: PrepayRequest) -> str:
        return f"sbx_{request.out_trade_no}"

    def request_payment_params(self, prepay_id: str) -> RequestPaymentParams:
        timestamp = str(int(time.time()))
        nonce = secrets.token_hex(16)
        package = f"prepay_id={prepay_id}"
        return RequestPaymentParams(
            appId=self.appid, timeStamp=timestamp, nonceStr=nonce, package=package, signType="RSA",
            paySign=self._sdk.sign([self.appid, timestamp, nonce, package]),
        )

    async def query_trade(self, out_trade_no: str) -> TradeState:
        # A sandbox payment is only ever confirmed through its notification, which is applied at once.
        return TradeState(out_trade_no=out_trade_no, trade_state="NOTPAY", mchid=self.mchid, appid=self.appid)

    async def close_trade(self, out_trade_no: str) -> None:
        return None

    async def refund(self, request: RefundRequest) -> RefundResult:
        return RefundResult(
            out_refund_no=request.out_refund_no, status="SUCCESS", refund_id=f"sbx_rf_{request.out_refund_no}",
            refund_fen=request.refund_fen, mchid=self.mchid, out_trade_no=request.out_trade_no,
        )

    async def query_refund(self, out_refund_no: str) -> RefundResult:
        return RefundResult(out_refund_no=out_refund_no, status="SUCCESS", refund_id=f"sbx_rf_{out_refund_no}")

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> Notification:
        return verify_notification(
            self._sdk, public_key=self._platform_public, public_key_id=SANDBOX_PUBLIC_KEY_ID,
            headers=headers, body=body, max_age_seconds=self._max_age,
        )

    def payment_success_notification(
        self, *, out_trade_no: str, total_fen: int, payer_openid: str
    ) -> tuple[dict[str, str], bytes]:
        """A TRANSACTION.SUCCESS notification as WeChat Pay would send it: headers and raw body."""
        now = clock.now()
        resource = {
            "mchid": self.mchid,
            "appid": self.appid,
            "out_trade_no": out_trade_no,
            "transaction_id": "sbx" + now.strftime("%Y%m%d") + secrets.token_hex(10),
            "trade_type": "JSAPI",
            "trade_state": "SUCCESS",
            "trade_state_desc": "支付成功",
            "bank_type": "OTHERS",
            "success_time": now.isoformat(timespec="seconds"),
            "payer": {"openid": payer_openid},
            "amount": {"total": total_fen, "payer_total": total_fen, "currency": "CNY", "payer_currency": "CNY"},
        }
        return self._notification("TRANSACTION.SUCCESS", "transaction", resource)

    def _notification(self, event_type: str, original_type: str, resource: dict) -> tuple[dict[str, str], bytes]:
        nonce = secrets.token_hex(6)  # AEAD nonce: 12 characters, used as its UTF-8 bytes
        ciphertext = AESGCM(self._apiv3.encode()).encrypt(
            nonce.encode(), json.dumps(resource, ensure_ascii=False).encode(), original_type.encode()
        )
        body = json.dumps(
            {
                "id": secrets.token_hex(16),
                "create_time": clock.now().isoformat(timespec="seconds"),
                "resource_type": "encrypt-resource",
                "event_type": event_type,
                "summary": "sandbox",
                "resource": {
                    "original_type": original_type,
                    "algorithm": "AEAD_AES_256_GCM",
                    "ciphertext": base64.b64encode(ciphertext).decode(),
                    "associated_data": original_type,
                    "nonce": nonce,
                },
            },
            ensure_ascii=False,
        )
        timestamp = str(int(clock.now().timestamp()))
        header_nonce = secrets.token_hex(16)
        message = f"{timestamp}\n{header_nonce}\n{body}\n".encode()
        signature = self._platform.sign(message, padding.PKCS1v15(), hashes.SHA256())
        headers = {
            "Wechatpay-Signature": base64.b64encode(signature).decode(),
            "Wechatpay-Timestamp": timestamp,
            "Wechatpay-Nonce": header_nonce,
            "Wechatpay-Serial": SANDBOX_PUBLIC_KEY_ID,
            "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
        }
        return headers, body.encode()

    async def aclose(self) -> None:
        return None
