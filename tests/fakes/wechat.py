"""A local fake of WeChat's mini-program server API, served over HTTP on loopback.

It follows the documented request and response shapes (errcode/errmsg JSON, HTTP 200 even on
errors) so the live adapter is tested over a real socket, not by patching functions.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
from typing import Any

import uvicorn
from litestar import Litestar, Request, Response, get, post


class FakeWeChat:
    def __init__(self, appid: str = "wx-test-appid", secret: str = "wx-test-secret") -> None:
        self.appid = appid
        self.secret = secret
        self.login_codes: dict[str, dict[str, str]] = {}
        self.used_codes: set[str] = set()
        self.phone_codes: dict[str, str] = {}
        self.access_tokens: set[str] = set()
        self.subscribe_messages: list[dict[str, Any]] = []
        self.calls: list[str] = []
        self.rate_limited = False
        # Subscribe messages as WeChat enforces them (一次性订阅): when `enforce_subscriptions` is on, a send
        # needs an acceptance left for (openid, template), else errcode 43101 ("user refuse to accept the msg").
        self.enforce_subscriptions = False
        self.subscriptions: dict[tuple[str, str], int] = {}
        self.refused: list[dict[str, Any]] = []
        self.base_url = ""
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task | None = None

    # --- scripting helpers for tests ---
    def issue_login_code(self, openid: str | None = None, unionid: str | None = None) -> str:
        code = "code-" + secrets.token_hex(8)
        entry = {"openid": openid or "o" + secrets.token_hex(12), "session_key": secrets.token_hex(12)}
        if unionid:
            entry["unionid"] = unionid
        self.login_codes[code] = entry
        return code

    def accept_subscription(self, openid: str, template_id: str) -> None:
        """The customer tapped "allow" in wx.requestSubscribeMessage: one message may be sent."""
        key = (openid, template_id)
        self.subscriptions[key] = self.subscriptions.get(key, 0) + 1

    def issue_phone_code(self, phone: str) -> str:
        code = "phone-" + secrets.token_hex(8)
        self.phone_codes[code] = phone
        return code

    # --- the protocol ---
    def app(self) -> Litestar:
        fake = self

        def error(errcode: int, errmsg: str) -> Response:
            return Response({"errcode": errcode, "errmsg": errmsg}, status_code=200)

        @get("/sns/jscode2session")
        async def jscode2session(appid: str, secret: str, js_code: str, grant_type: str) -> Response:
            fake.calls.append("jscode2session")
            if appid != fake.appid or secret != fake.secret:
                return error(40013, "invalid appid")
            if grant_type != "authorization_code":
                return error(40002, "invalid grant_type")
            if fake.rate_limited:
                return error(45011, "api minute-quota reach limit mustslower retry next minute")
            if js_code in fake.used_codes or js_code not in fake.login_codes:
                return error(40029, "invalid code")
            fake.used_codes.add(js_code)
            return Response({**fake.login_codes[js_code]}, status_code=200)

        @post("/cgi-bin/stable_token", status_code=200)
        async def stable_token(data: dict[str, Any]) -> Response:
            fake.calls.append("stable_token")
            if data.get("appid") != fake.appid or data.get("secret") != fake.secret:
                return error(40013, "invalid appid")
            token = "at-" + secrets.token_hex(8)
            fake.access_tokens.add(token)
            return Response({"access_token": token, "expires_in": 7200})

        def token_ok(request: Request) -> bool:
            return request.query_params.get("access_token") in fake.access_tokens

        @post("/wxa/business/getuserphonenumber", status_code=200)
        async def getuserphonenumber(request: Request, data: dict[str, Any]) -> Response:
            fake.calls.append("getuserphonenumber")
            if not token_ok(request):
                return error(40001, "invalid credential, access_token is invalid or not latest")
            if fake.rate_limited:
                return error(45011, "api minute-quota reach limit")
            phone = fake.phone_codes.pop(data.get("code", ""), None)
            if phone is None:
                return error(40029, "invalid code")
            return Response(
                {
                    "errcode": 0,
                    "errmsg": "ok",
                    "phone_info": {
                        "phoneNumber": phone,
                        "purePhoneNumber": phone,
                        "countryCode": "86",
                        "watermark": {"timestamp": 1700000000, "appid": fake.appid},
                    },
                }
            )

        @post("/cgi-bin/message/subscribe/send", status_code=200)
        async def subscribe_send(request: Request, data: dict[str, Any]) -> Response:
            fake.calls.append("subscribe_send")
            if not token_ok(request):
                return error(40001, "invalid credential")
            if not data.get("touser") or not data.get("template_id") or not isinstance(data.get("data"), dict):
                return error(47003, "argument invalid!")
            key = (data["touser"], data["template_id"])
            if fake.enforce_subscriptions:
                if fake.subscriptions.get(key, 0) < 1:
                    fake.refused.append(data)
                    return error(43101, "user refuse to accept the msg")
                fake.subscriptions[key] -= 1
            fake.subscribe_messages.append(data)
            return Response({"errcode": 0, "errmsg": "ok"})

        @post("/wxa/getwxacodeunlimit", status_code=200)
        async def wxacode(request: Request, data: dict[str, Any]) -> Response:
            fake.calls.append("getwxacodeunlimit")
            if not token_ok(request):
                return error(40001, "invalid credential")
            if len(data.get("scene", "")) > 32:
                return error(40169, "invalid length for scene")
            return Response(b"\x89PNG\r\n\x1a\nfake", media_type="image/png")

        return Litestar(
            [jscode2session, stable_token, getuserphonenumber, subscribe_send, wxacode], openapi_config=None
        )

    async def start(self) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(self.app(), log_level="error", lifespan="off")
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            await asyncio.sleep(0.01)
        self.base_url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            await self._task
