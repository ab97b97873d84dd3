"""A local fake of WeChat Pay API v3, served over HTTP on loopback, and notifications built as WeChat builds them.

It is written from WeChat Pay's documented protocol, independently of the code under test:
requests must carry a valid merchant `Authorization` (WECHATPAY2-SHA256-RSA2048 over
"METHOD\\nPATH\\nTIMESTAMP\\nNONCE\\nBODY\\n"), every answer is signed with the platform key
(Wechatpay-Timestamp/-Nonce/-Signature/-Serial), and notifications carry an AEAD_AES_256_GCM
resource encrypted with the APIv3 key. Keys are generated per test session.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from litestar import Litestar, Request, Response, route

MCHID = "1900009191"
APPID = "wx-test-appid"


def _pem_private(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _pem_public(key: rsa.RSAPrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def rsa_sign(key: rsa.RSAPrivateKey, message: str) -> str:
    return base64.b64encode(key.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


@dataclass
class Trade:
    out_trade_no: str
    total: int
    openid: str
    prepay_id: str
    state: str = "NOTPAY"
    transaction_id: str | None = None


@dataclass
class FakeRefund:
    out_refund_no: str
    out_trade_no: str
    refund: int
    total: int
    refund_id: str
    status: str = "PROCESSING"
    queries: int = 0


@dataclass
class FakeWeChatPay:
    mchid: str = MCHID
    appid: str = APPID
    merchant_key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))
    platform_key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))
    apiv3_key: str = field(default_factory=lambda: secrets.token_hex(16))  # 32 characters
    public_key_id: str = field(default_factory=lambda: "PUB_KEY_ID_" + secrets.token_hex(8).upper())
    merchant_serial: str = field(default_factory=lambda: secrets.token_hex(20).upper())
    trades: dict[str, Trade] = field(default_factory=dict)
    refunds: dict[str, FakeRefund] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    # Scripting: answer the next N refund submissions with 500 SYSTEM_ERROR; answer PROCESSING to
    # this many refund queries before SUCCESS.
    refund_failures: int = 0
    refund_processing_queries: int = 1
    # Answer refund submissions with 400 and this code (a refusal for good), while set.
    refund_refusal: str | None = None
    base_url: str = ""
    _server: Any = None
    _task: Any = None

    # --- keys as the merchant configures them ---
    @property
    def merchant_private_pem(self) -> str:
        return _pem_private(self.merchant_key)

    @property
    def platform_public_pem(self) -> str:
        return _pem_public(self.platform_key)

    # --- what WeChat sends ---
    def encrypt_resource(self, resource: dict[str, Any], associated_data: str = "transaction",
                         key: str | None = None) -> dict[str, str]:
        nonce = secrets.token_hex(6)
        ciphertext = AESGCM((key or self.apiv3_key).encode()).encrypt(
            nonce.encode(), json.dumps(resource).encode(), associated_data.encode())
        return {"original_type": associated_data, "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": base64.b64encode(ciphertext).decode(), "associated_data": associated_data,
                "nonce": nonce}

    def notification(
        self, event_type: str, resource: dict[str, Any], *, timestamp: int | None = None,
        signing_key: rsa.RSAPrivateKey | None = None, apiv3_key: str | None = None, serial: str | None = None,
        original_type: str = "transaction",
    ) -> tuple[dict[str, str], bytes]:
        body = json.dumps({
            "id": secrets.token_hex(18), "create_time": "2024-06-08T10:34:56+08:00",
            "resource_type": "encrypt-resource", "event_type": event_type, "summary": "支付成功",
            "resource": self.encrypt_resource(resource, original_type, apiv3_key),
        })
        ts = str(int(time.time()) if timestamp is None else timestamp)
        nonce = secrets.token_hex(16)
        signature = rsa_sign(signing_key or self.platform_key, f"{ts}\n{nonce}\n{body}\n")
        headers = {"Wechatpay-Timestamp": ts, "Wechatpay-Nonce": nonce, "Wechatpay-Signature": signature,
                   "Wechatpay-Serial": serial or self.public_key_id,
                   "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048", "Content-Type": "application/json"}
        return headers, body.encode()

    def transaction_resource(self, out_trade_no: str, total: int, openid: str = "o-test",
                             transaction_id: str | None = None, **overrides: Any) -> dict[str, Any]:
        resource = {
            "mchid": self.mchid, "appid": self.appid, "out_trade_no": out_trade_no,
            "transaction_id": transaction_id or "4200" + secrets.token_hex(12), "trade_type": "JSAPI",
            "trade_state": "SUCCESS", "trade_state_desc": "支付成功", "bank_type": "CMC",
            "success_time": "2024-06-08T10:34:56+08:00", "payer": {"openid": openid},
            "amount": {"total": total, "payer_total": total, "currency": "CNY", "payer_currency": "CNY"},
        }
        resource.update(overrides)
        return resource

    def customer_pays(self, out_trade_no: str) -> dict[str, Any]:
        """The customer pays at WeChat: the trade succeeds. Returns the resource its notification carries."""
        trade = self.trades[out_trade_no]
        trade.state = "SUCCESS"
        trade.transaction_id = trade.transaction_id or "4200" + secrets.token_hex(12)
        return self.transaction_resource(out_trade_no, trade.total, trade.openid, trade.transaction_id)

    def refund_resource(self, out_refund_no: str, status: str = "SUCCESS", **overrides: Any) -> dict[str, Any]:
        refund = self.refunds[out_refund_no]
        resource = {"mchid": self.mchid, "out_trade_no": refund.out_trade_no, "transaction_id": "4200x",
                    "out_refund_no": out_refund_no, "refund_id": refund.refund_id, "refund_status": status,
                    "success_time": "2024-06-08T10:34:56+08:00", "user_received_account": "支付用户零钱",
                    "amount": {"total": refund.total, "refund": refund.refund, "payer_total": refund.total,
                               "payer_refund": refund.refund}}
        resource.update(overrides)
        return resource

    # --- the server ---
    def _signed(self, status: int, payload: dict[str, Any] | None) -> Response:
        body = json.dumps(payload) if payload is not None else ""
        ts, nonce = str(int(time.time())), secrets.token_hex(16)
        headers = {"Wechatpay-Timestamp": ts, "Wechatpay-Nonce": nonce, "Wechatpay-Serial": self.public_key_id,
                   "Wechatpay-Signature": rsa_sign(self.platform_key, f"{ts}\n{nonce}\n{body}\n"),
                   "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048"}
        return Response(content=body.encode(), status_code=status, headers=headers,
                        media_type="application/json" if payload is not None else "text/plain")

    def _authorised(self, request: Request, body: bytes) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, params = header.partition(" ")
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        if scheme != "WECHATPAY2-SHA256-RSA2048" or fields.get("mchid") != self.mchid:
            return False
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        message = f"{request.method}\n{path}\n{fields.get('timestamp')}\n{fields.get('nonce_str')}\n{body.decode()}\n"
        try:
            self.merchant_key.public_key().verify(base64.b64decode(fields.get("signature", "")), message.encode(),
                                                  padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError):
            return False
        return True

    def app(self) -> Litestar:
        fake = self

        @route("/{path:path}", http_method=["GET", "POST"])
        async def handle(request: Request, path: str) -> Response:
            body = await request.body()
            fake.calls.append((request.method, path))
            if not fake._authorised(request, body):
                return fake._signed(401, {"code": "SIGN_ERROR", "message": "签名错误"})
            data = json.loads(body) if body else {}
            return fake._dispatch(request.method, path, data)

        return Litestar([handle], openapi_config=None)

    def _dispatch(self, method: str, path: str, data: dict[str, Any]) -> Response:
        if method == "POST" and path == "/v3/pay/transactions/jsapi":
            if data.get("mchid") != self.mchid or data.get("appid") != self.appid or not data.get("notify_url"):
                return self._signed(400, {"code": "PARAM_ERROR", "message": "bad params"})
            no = data["out_trade_no"]
            trade = self.trades.get(no) or Trade(no, data["amount"]["total"], data["payer"]["openid"],
                                                 "wx" + secrets.token_hex(14))
            self.trades[no] = trade
            return self._signed(200, {"prepay_id": trade.prepay_id})
        match = re.fullmatch(r"/v3/pay/transactions/out-trade-no/([^/]+)(/close)?", path)
        if match:
            trade = self.trades.get(match.group(1))
            if match.group(2):
                if trade is None:
                    return self._signed(404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"})
                if trade.state == "SUCCESS":
                    return self._signed(400, {"code": "ORDERPAID", "message": "订单已支付"})
                trade.state = "CLOSED"
                return self._signed(204, None)
            if trade is None:
                return self._signed(404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"})
            resource = self.transaction_resource(trade.out_trade_no, trade.total, trade.openid,
                                                 trade.transaction_id, trade_state=trade.state)
            if trade.state != "SUCCESS":
                resource.pop("transaction_id")
            return self._signed(200, resource)
        if method == "POST" and path == "/v3/refund/domestic/refunds":
            if self.refund_failures > 0:
                self.refund_failures -= 1
                return self._signed(500, {"code": "SYSTEM_ERROR", "message": "系统繁忙"})
            if self.refund_refusal:
                return self._signed(400, {"code": self.refund_refusal, "message": "退款被拒绝"})
            no = data["out_refund_no"]
            refund = self.refunds.get(no)
            if refund is None:  # idempotent per out_refund_no, as WeChat is
                refund = FakeRefund(no, data.get("out_trade_no") or self._trade_of(data.get("transaction_id")),
                                    data["amount"]["refund"], data["amount"]["total"], "5030" + secrets.token_hex(10))
                self.refunds[no] = refund
            return self._signed(200, self._refund_payload(refund))
        match = re.fullmatch(r"/v3/refund/domestic/refunds/([^/]+)", path)
        if match:
            refund = self.refunds.get(match.group(1))
            if refund is None:
                return self._signed(404, {"code": "RESOURCE_NOT_EXISTS", "message": "退款单不存在"})
            refund.queries += 1
            if refund.queries > self.refund_processing_queries:
                refund.status = "SUCCESS"
            return self._signed(200, self._refund_payload(refund))
        return self._signed(404, {"code": "NOT_FOUND", "message": path})

    def _trade_of(self, transaction_id: str | None) -> str:
        return next((t.out_trade_no for t in self.trades.values() if t.transaction_id == transaction_id), "")

    def _refund_payload(self, refund: FakeRefund) -> dict[str, Any]:
        return {"refund_id": refund.refund_id, "out_refund_no": refund.out_refund_no,
                "out_trade_no": refund.out_trade_no, "channel": "ORIGINAL", "status": refund.status,
                "user_received_account": "支付用户零钱", "create_time": "2024-06-08T10:34:56+08:00",
                "amount": {"total": refund.total, "refund": refund.refund, "payer_total": refund.total,
                           "payer_refund": refund.refund, "currency": "CNY"}}

    async def start(self) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        self._server = uvicorn.Server(uvicorn.Config(self.app(), log_level="error", lifespan="off"))
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            await asyncio.sleep(0.01)
        self.base_url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            await self._task
