"""The mini-program server API: code2session, getuserphonenumber, subscribe messages, wxacode.

`LiveMiniProgram` speaks WeChat's documented HTTP endpoints (base URL configurable, so tests point
it at a local fake server); `SandboxMiniProgram` answers locally and records what it would send,
so the whole system runs with no WeChat account.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Annotated, Any, Protocol

import httpx
import msgspec
import structlog

from kernel import clock
from kernel.errors import TooManyRequests, Unauthorized, UpstreamUnavailable
from kernel.settings import WeChatSettings

log = structlog.get_logger(__name__)


class WeChatSession(msgspec.Struct, frozen=True):
    openid: str
    session_key: str
    unionid: str | None = None


class WeChatCodeInvalid(Unauthorized):
    code = "wechat_code_invalid"
    default_message = "The WeChat login code is invalid, expired or already used."


class WeChatRateLimited(TooManyRequests):
    code = "wechat_rate_limited"
    default_message = "WeChat is limiting requests; try again shortly."


class WeChatUnavailable(UpstreamUnavailable):
    code = "wechat_unavailable"
    default_message = "WeChat did not answer correctly; try again."


# errcodes documented for code2session / getuserphonenumber that mean "this code is no good".
# A subscribe-message template id as we keep it: WeChat's have 43 characters; the columns and settings that hold
# one take 64 (a longer one is no WeChat id and made WeChat refuse every message sent with it).
TEMPLATE_ID_MAX_CHARS = 64
TemplateId = Annotated[str, msgspec.Meta(min_length=1, max_length=TEMPLATE_ID_MAX_CHARS)]

_INVALID_CODE_ERRCODES = {40029, 40163, 40226, 41008}
_RATE_LIMIT_ERRCODES = {45011}


def _raise_for_errcode(payload: dict[str, Any], endpoint: str) -> None:
    errcode = int(payload.get("errcode") or 0)
    if errcode == 0:
        return
    log.info("wechat.error", endpoint=endpoint, errcode=errcode, errmsg=payload.get("errmsg", ""))
    if errcode in _INVALID_CODE_ERRCODES:
        raise WeChatCodeInvalid(errcode=errcode)
    if errcode in _RATE_LIMIT_ERRCODES:
        raise WeChatRateLimited(errcode=errcode)
    raise WeChatUnavailable(errcode=errcode)


class MiniProgram(Protocol):
    async def code2session(self, code: str) -> WeChatSession: ...

    async def phone_number(self, code: str) -> str: ...

    async def send_subscribe_message(
        self, openid: str, template_id: str, data: dict[str, str], page: str = ""
    ) -> None: ...

    async def unlimited_qr_code(self, scene: str, page: str) -> bytes: ...

    async def aclose(self) -> None: ...


class LiveMiniProgram:
    def __init__(self, settings: WeChatSettings, client: httpx.AsyncClient | None = None) -> None:
        self._settings = settings
        self._client = client or httpx.AsyncClient(
            base_url=settings.api_base, timeout=settings.timeout_seconds
        )
        self._access_token: str | None = None
        self._access_token_expires = 0.0
        self._token_lock = asyncio.Lock()

    async def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        try:
            response = await self._client.get(path, params=params)
        except httpx.HTTPError as exc:
            raise WeChatUnavailable(reason=type(exc).__name__) from exc
        return self._json(response, path)

    async def _post(self, path: str, params: dict[str, str], body: dict[str, Any]) -> httpx.Response:
        try:
            return await self._client.post(path, params=params, json=body)
        except httpx.HTTPError as exc:
            raise WeChatUnavailable(reason=type(exc).__name__) from exc

    @staticmethod
    def _json(response: httpx.Response, path: str) -> dict[str, Any]:
        if response.status_code != 200:
            raise WeChatUnavailable(http_status=response.status_code)
        try:
            payload = response.json()
        except ValueError as exc:
            raise WeChatUnavailable(reason="not json") from exc
        _raise_for_errcode(payload, path)
        return payload

    async def code2session(self, code: str) -> WeChatSession:
        payload = await self._get(
            "/sns/jscode2session",
            {
                "appid": self._settings.appid,
                "secret": self._settings.secret,
                "js_code": code,
                "grant_type": "authorization_code",
            },
        )
        if not payload.get("openid") or not payload.get("session_key"):
            raise WeChatUnavailable(reason="missing openid")
        return WeChatSession(
            openid=payload["openid"], session_key=payload["session_key"], unionid=payload.get("unionid")
        )

    async def access_token(self) -> str:
        """The stable access token (getStableAccessToken), shared safely by every replica."""
        async with self._token_lock:
            if self._access_token and time.monotonic() < self._access_token_expires:
                return self._access_token
            response = await self._post(
                "/cgi-bin/stable_token",
                {},
                {
                    "grant_type": "client_credential",
                    "appid": self._settings.appid,
                    "secret": self._settings.secret,
                    "force_refresh": False,
                },
            )
            payload = self._json(response, "/cgi-bin/stable_token")
            self._access_token = payload["access_token"]
            # Refresh five minutes early so a token never expires mid-request.
            self._access_token_expires = time.monotonic() + int(payload.get("expires_in", 7200)) - 300
            return self._access_token

    async def phone_number(self, code: str) -> str:
        token = await self.access_token()
        response = await self._post(
            "/wxa/business/getuserphonenumber", {"access_token": token}, {"code": code}
        )
        payload = self._json(response, "/wxa/business/getuserphonenumber")
        info = payload.get("phone_info") or {}
        phone = info.get("purePhoneNumber") or info.get("phoneNumber")
        if not phone:
            raise WeChatUnavailable(reason="missing phone_info")
        return str(phone)

    async def send_subscribe_message(
        self, openid: str, template_id: str, data: dict[str, str], page: str = ""
    ) -> None:
        token = await self.access_token()
        body: dict[str, Any] = {
            "touser": openid,
            "template_id": template_id,
            "data": {key: {"value": value} for key, value in data.items()},
        }
        if page:
            body["page"] = page
        response = await self._post("/cgi-bin/message/subscribe/send", {"access_token": token}, body)
        self._json(response, "/cgi-bin/message/subscribe/send")

    async def unlimited_qr_code(self, scene: str, page: str) -> bytes:
        token = await self.access_token()
        response = await self._post(
            "/wxa/getwxacodeunlimit",
            {"access_token": token},
            {"scene": scene, "page": page, "check_path": False},
        )
        # Success is an image; failure is a JSON error body.
        if response.headers.get("content-type", "").startswith("image/"):
            return response.content
        self._json(response, "/wxa/getwxacodeunlimit")
        raise WeChatUnavailable(reason="no image")

    async def aclose(self) -> None:
        await self._client.aclose()


class SentMessage(msgspec.Struct, frozen=True):
    openid: str
    template_id: str
    data: dict[str, str]
    page: str
    sent_at: str


class SandboxMiniProgram:
    """Local stand-in: `code = "sandbox:<name>"` logs in as that name; messages are recorded."""

    def __init__(self) -> None:
        self.sent: list[SentMessage] = []
        self.qr_codes: list[tuple[str, str]] = []

    async def code2session(self, code: str) -> WeChatSession:
        prefix, _, name = code.partition(":")
        if prefix != "sandbox" or not name or len(name) > 48:
            raise WeChatCodeInvalid(hint='in sandbox mode the code is "sandbox:<name>"')
        digest = hashlib.sha256(name.encode()).hexdigest()
        return WeChatSession(openid=f"sbx-{digest[:24]}", session_key=digest[24:48])

    async def phone_number(self, code: str) -> str:
        prefix, _, phone = code.partition(":")
        if prefix != "sandbox" or not phone.isdigit() or not 6 <= len(phone) <= 15:
            raise WeChatCodeInvalid(hint='in sandbox mode the code is "sandbox:<phone digits>"')
        return phone

    async def send_subscribe_message(
        self, openid: str, template_id: str, data: dict[str, str], page: str = ""
    ) -> None:
        self.sent.append(SentMessage(openid, template_id, dict(data), page, clock.now().isoformat()))
        log.info("wechat.sandbox.subscribe_message", template_id=template_id)

    async def unlimited_qr_code(self, scene: str, page: str) -> bytes:
        self.qr_codes.append((scene, page))
        # A tiny valid PNG stands in for the QR image.
        return bytes.fromhex(
            "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
            "1f15c4890000000d49444154789c6300010000000500010d0a2db40000000049454e44ae426082"
        )

    async def aclose(self) -> None:
        return None


def build_miniprogram(settings: WeChatSettings) -> MiniProgram:
    if settings.mode == "sandbox":
        return SandboxMiniProgram()
    if settings.mode == "live":
        return LiveMiniProgram(settings)
    raise ValueError(f"WECHAT_MODE must be 'sandbox' or 'live', not {settings.mode!r}")
