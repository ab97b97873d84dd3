"""Customer login and profile through the live WeChat adapter against the local fake server."""

from __future__ import annotations

import logging


from kernel import crypto
from kernel.identity.models import Customer
from kernel.settings import WeChatSettings
from kernel.wechat.miniprogram import LiveMiniProgram
from tests.conftest import serve_in_loop
from tests.factories import customer_headers, make_customer


async def test_login_creates_customer_and_keeps_session_key_sealed(live_client, fake_wechat):
    code = fake_wechat.issue_login_code(unionid="union-1")
    response = await live_client.post("/app/auth/login", json={"code": code})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["is_new"] is True and body["token_type"] == "Bearer"
    assert "session_key" not in response.text
    customer = await Customer.get(id=body["customer_id"])
    openid = fake_wechat.login_codes[code]["openid"]
    assert customer.openid == openid and customer.unionid == "union-1"
    session_key = fake_wechat.login_codes[code]["session_key"]
    assert session_key not in customer.session_key_sealed
    assert crypto.unseal(customer.session_key_sealed) == session_key

    me = await live_client.get("/app/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200 and me.json()["id"] == customer.id
    assert "openid" not in me.json() and "session_key" not in me.text

    # A second login with a new code for the same openid is the same customer.
    again = await live_client.post("/app/auth/login", json={"code": fake_wechat.issue_login_code(openid=openid)})
    assert again.json()["customer_id"] == customer.id and again.json()["is_new"] is False


async def test_reused_code_is_refused_with_40029(live_client, fake_wechat):
    code = fake_wechat.issue_login_code()
    assert (await live_client.post("/app/auth/login", json={"code": code})).status_code == 200
    reused = await live_client.post("/app/auth/login", json={"code": code})
    assert reused.status_code == 401
    assert reused.json()["code"] == "wechat_code_invalid"
    assert reused.json()["detail"]["errcode"] == 40029


async def test_unknown_code_is_refused(live_client):
    response = await live_client.post("/app/auth/login", json={"code": "never-issued"})
    assert response.status_code == 401 and response.json()["code"] == "wechat_code_invalid"


async def test_wechat_rate_limit_gives_429(live_client, fake_wechat):
    fake_wechat.rate_limited = True
    try:
        response = await live_client.post("/app/auth/login", json={"code": fake_wechat.issue_login_code()})
    finally:
        fake_wechat.rate_limited = False
    assert response.status_code == 429
    assert response.json()["code"] == "wechat_rate_limited" and response.json()["detail"]["errcode"] == 45011


async def test_wechat_down_gives_502(database, redis):
    from api.app import create_app

    adapter = LiveMiniProgram(
        WeChatSettings(mode="live", appid="a", secret="s", api_base="http://127.0.0.1:9", timeout_seconds=1)
    )
    async with serve_in_loop(create_app(miniprogram=adapter, embedded_worker=False)) as client:
        response = await client.post("/app/auth/login", json={"code": "x"})
    assert response.status_code == 502 and response.json()["code"] == "wechat_unavailable"


async def test_phone_binding_masks_and_encrypts(live_client, fake_wechat, caplog, capsys):
    customer = await make_customer()
    caplog.set_level(logging.DEBUG)
    code = fake_wechat.issue_phone_code("13912345678")
    response = await live_client.post("/app/me/phone", json={"code": code}, headers=customer_headers(customer))
    assert response.status_code == 200, response.text
    assert response.json()["phone"] == "139****5678"
    assert "13912345678" not in response.text
    stored = await Customer.get(id=customer.id)
    assert "13912345678" not in (stored.phone_sealed or "")
    assert crypto.unseal(stored.phone_sealed) == "13912345678"
    assert stored.phone_hash == crypto.lookup_hash("13912345678")
    # The number appears in no log line.
    captured = capsys.readouterr()
    assert "13912345678" not in caplog.text + captured.out + captured.err
    assert "stable_token" in fake_wechat.calls and "getuserphonenumber" in fake_wechat.calls

    # A phone code is single use.
    again = await live_client.post("/app/me/phone", json={"code": code}, headers=customer_headers(customer))
    assert again.status_code == 401 and again.json()["code"] == "wechat_code_invalid"


async def test_sandbox_login_only_accepts_sandbox_codes(client):
    ok = await client.post("/app/auth/login", json={"code": "sandbox:sandbox-test-user"})
    assert ok.status_code == 200
    bad = await client.post("/app/auth/login", json={"code": "0a1b2c"})
    assert bad.status_code == 401 and bad.json()["code"] == "wechat_code_invalid"


async def test_sandbox_codes_are_refused_by_the_live_adapter(live_client):
    response = await live_client.post("/app/auth/login", json={"code": "sandbox:alice"})
    assert response.status_code == 401


async def test_profile_update_and_validation(client):
    customer = await make_customer()
    headers = customer_headers(customer)
    ok = await client.patch(
        "/app/me", json={"nickname": "小美", "gender": "female", "birth_date": "1995-04-01"}, headers=headers
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["nickname"] == "小美" and ok.json()["birth_date"] == "1995-04-01"

    future = await client.patch("/app/me", json={"birth_date": "2999-01-01"}, headers=headers)
    assert future.status_code == 422 and future.json()["detail"]["field"] == "birth_date"
    bad_enum = await client.patch("/app/me", json={"gender": "robot"}, headers=headers)
    assert bad_enum.status_code == 400 and bad_enum.json()["detail"]["field"] == "gender"
    unchanged = await Customer.get(id=customer.id)
    assert unchanged.gender == "female" and str(unchanged.birth_date) == "1995-04-01"


async def test_concurrent_first_logins_create_one_customer(client):
    import asyncio

    responses = await asyncio.gather(
        *[client.post("/app/auth/login", json={"code": "sandbox:race-twin"}) for _ in range(10)]
    )
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200]
    assert len({r.json()["customer_id"] for r in responses}) == 1
