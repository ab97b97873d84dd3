"""Requests an attack round sent to a running server that got a 500 (or a 503), or put a credential in the logs."""

from __future__ import annotations

import secrets
import time

import jwt
import pytest

from kernel.settings import get_settings
from tests.api.test_isolation import all_logs
from tests.factories import make_staff, staff_headers

NOTIFY = "/payments/wechat/notify"


async def test_json_nested_a_thousand_levels_deep_is_a_400(client):
    body = "[" * 1000 + "]" * 1000  # 2 KB, no token needed
    for path in ("/app/auth/login", "/admin/auth/login"):
        response = await client.post(path, content=body, headers={"content-type": "application/json"})
        assert response.status_code == 400, response.text
        # The strict input check (api/strict.py) refuses the wrong shape at the first bracket; Litestar's own
        # decoder would call it malformed. Either way a 400 with a stable code, never a RecursionError's 500.
        assert response.json()["code"] in ("malformed_body", "validation_error")
    deep_object = '{"a":' * 1000 + "1" + "}" * 1000
    response = await client.post("/app/auth/login", content=deep_object, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text


async def test_a_four_hundred_digit_wechatpay_timestamp_is_refused_with_401(client):
    from orders.gateway.sandbox import SANDBOX_PUBLIC_KEY_ID

    headers = {
        "Wechatpay-Timestamp": "9" * 400, "Wechatpay-Nonce": secrets.token_hex(16),
        "Wechatpay-Signature": "c2lnbmF0dXJl", "Wechatpay-Serial": SANDBOX_PUBLIC_KEY_ID,
        "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048", "Content-Type": "application/json",
    }
    for timestamp in ("9" * 400, "-" + "9" * 400, "1e400", "١٧٠٠٠٠٠٠٠٠"):
        response = await client.post(NOTIFY, content=b"{}", headers={**headers, "Wechatpay-Timestamp": timestamp.encode()})
        assert response.status_code == 401, (timestamp, response.status_code, response.text)
        assert response.json()["code"] == "FAIL"


def _signed(claims: dict) -> str:
    now = int(time.time())
    payload = {"iss": "clinic-miniprogram", "iat": now, "exp": now + 600, **claims}
    return jwt.encode(payload, get_settings().app.secret_key, algorithm="HS256")


MALFORMED_CLAIMS = [
    {"sub": "1", "typ": "staff", "roles": 5, "ver": 0},
    {"sub": "1", "typ": "staff", "roles": ["admin"], "ver": "x"},
    {"sub": "1", "typ": "staff", "roles": ["admin"], "ver": 10**30},
    {"sub": "1", "typ": "customer", "exp": "tomorrow"},
    {"sub": "1", "typ": "customer", "exp": None},
    {"sub": ["1"], "typ": "customer"},
    {"sub": {"id": 1}, "typ": "staff"},
    {"sub": "1", "typ": ["customer"]},
    {"sub": "99999999999999999999999", "typ": "customer"},
    {"sub": "1", "typ": "staff", "roles": [1, 2]},
]


@pytest.mark.parametrize("claims", MALFORMED_CLAIMS, ids=[str(i) for i in range(len(MALFORMED_CLAIMS))])
async def test_a_validly_signed_token_with_malformed_claims_is_a_401(client, claims):
    token = _signed(claims)
    for path in ("/app/me", "/admin/auth/me"):
        response = await client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, (path, response.status_code, response.text)
        assert response.json()["code"] == "token_invalid"


async def test_voucher_codes_never_reach_the_access_log(client):
    staff = await make_staff("front_desk")
    code = "VC" + secrets.token_hex(8).upper()
    with all_logs("INFO") as logs:
        looked_up = await client.get(f"/admin/vouchers/{code}", headers=staff_headers(staff))
        redeemed = await client.post(f"/admin/vouchers/{code}/redeem", json={"branch_id": 1},
                                     headers=staff_headers(staff))
        unmatched = await client.get(f"/admin/vouchers/{code}/nothing/here", headers=staff_headers(staff))
    assert looked_up.status_code == 404 and redeemed.status_code in {404, 400, 422} and unmatched.status_code in {404, 405}
    text = logs.getvalue()
    assert "/admin/vouchers/{code}" in text and "/admin/vouchers/{code}/redeem" in text  # the capture worked
    assert code not in text


async def test_a_client_that_drops_mid_body_is_logged_as_499_not_500(app, client):
    """A slow mobile client sends half its body and hangs up: not a server error."""
    messages = [
        {"type": "http.request", "body": b'{"username": "ali', "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/admin/auth/login", "raw_path": b"/admin/auth/login", "root_path": "",
        "query_string": b"", "headers": [(b"content-type", b"application/json"), (b"content-length", b"200")],
        "client": ("10.1.2.3", 5555), "server": ("testserver", 80), "state": {},
    }
    with all_logs("INFO") as logs:
        await app(scope, receive, send)
    access = [line for line in logs.getvalue().splitlines() if "request" in line and "/admin/auth/login" in line]
    assert access, logs.getvalue()
    assert "status=499" in access[-1], access[-1]
    assert "status=500" not in logs.getvalue() and "http.server_error" not in logs.getvalue()
