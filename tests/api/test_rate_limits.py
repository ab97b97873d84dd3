"""Rate limits: Redis-backed, per IP and per customer, a clear 429 with Retry-After."""

from __future__ import annotations

import contextlib

import pytest

from api.ratelimit import rate_limited
from kernel.identity.tokens import Principal


@contextlib.contextmanager
def limits_on(app):
    app.state.rate_limit_enabled = True
    try:
        yield
    finally:
        app.state.rate_limit_enabled = False


async def test_login_is_limited_per_ip(app, client, redis):
    await redis.flushdb()
    with limits_on(app):
        responses = [await client.post("/app/auth/login", json={"code": f"sandbox:rl-{i}"}) for i in range(35)]
    statuses = [r.status_code for r in responses]
    assert statuses[:30] == [200] * 30
    limited = [r for r in responses if r.status_code == 429]
    assert limited and all(r.json()["code"] == "rate_limited" for r in limited)
    assert int(limited[0].headers["retry-after"]) >= 1
    assert limited[0].json()["detail"]["scope"] == "ip"
    await redis.flushdb()


class FakeConnection:
    def __init__(self, app, principal, host="10.0.0.1"):
        self.app = app
        self.state = {"principal": principal}
        self.client = type("Client", (), {"host": host})()


async def test_per_customer_limit_is_separate_per_customer(app, client, redis):
    guard = rate_limited("probe", per_customer=(3, 60))
    alice, bella = Principal(kind="customer", id=1), Principal(kind="customer", id=2)
    with limits_on(app):
        for _ in range(3):
            await guard(FakeConnection(app, alice), None)
        with pytest.raises(Exception) as refused:
            await guard(FakeConnection(app, alice), None)
        assert refused.value.code == "rate_limited" and refused.value.detail["scope"] == "customer"
        # Another customer on the same address is not affected.
        await guard(FakeConnection(app, bella), None)
    await redis.flushdb()


async def test_limits_fail_open_when_redis_is_down(app):
    from arq.connections import ArqRedis

    guard = rate_limited("probe_down", per_ip=(1, 60))
    original = app.state.redis
    app.state.redis = ArqRedis.from_url("redis://127.0.0.1:1", socket_connect_timeout=0.3)
    try:
        with limits_on(app):
            for _ in range(3):
                await guard(FakeConnection(app, None), None)
    finally:
        await app.state.redis.aclose()
        app.state.redis = original


async def test_check_in_is_limited_per_customer(app, client, redis):
    from tests.factories import customer_headers, make_customer

    await redis.flushdb()
    customer = await make_customer()
    headers = customer_headers(customer)
    with limits_on(app):
        statuses = [(await client.post("/app/check-ins", headers=headers)).status_code for _ in range(12)]
    # One check-in, then "already checked in" until the window's 10 taps are used, then 429.
    assert statuses[0] == 201 and set(statuses[1:10]) == {409} and statuses[10:] == [429, 429]
    await redis.flushdb()
