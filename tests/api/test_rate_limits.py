"""Rate limits: Redis-backed, per IP and per customer, a clear 429 with Retry-After."""

from __future__ import annotations

import contextlib

import pytest

from api.ratelimit import rate_limited
from kernel.identity.tokens import Principal


async def forget_limits(redis) -> None:
    """Drop the rate-limit windows only: the run's Redis database also holds its claim key."""
    keys = [key async for key in redis.scan_iter(match="rl:*")]
    if keys:
        await redis.delete(*keys)


@contextlib.contextmanager
def limits_on(app):
    app.state.rate_limit_enabled = True
    try:
        yield
    finally:
        app.state.rate_limit_enabled = False


async def test_login_is_limited_per_ip(app, client, redis):
    await forget_limits(redis)
    with limits_on(app):
        responses = [await client.post("/app/auth/login", json={"code": f"sandbox:rl-{i}"}) for i in range(35)]
    statuses = [r.status_code for r in responses]
    assert statuses[:30] == [200] * 30
    limited = [r for r in responses if r.status_code == 429]
    assert limited and all(r.json()["code"] == "rate_limited" for r in limited)
    assert int(limited[0].headers["retry-after"]) >= 1
    assert limited[0].json()["detail"]["scope"] == "ip"
    await forget_limits(redis)


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
    await forget_limits(redis)


async def test_limits_fail_open_when_redis_is_down(app):
    from arq.connections import ArqRedis

    from api.ratelimit import window_counter

    guard = rate_limited("probe_down", per_ip=(1, 60))
    original = app.state.redis
    app.state.redis = ArqRedis.from_url("redis://127.0.0.1:1", socket_connect_timeout=0.3)
    try:
        with limits_on(app):
            for _ in range(3):
                await guard(FakeConnection(app, None), None)
            # Requests arriving together share one count (window_counter): its failure lets each through.
            calls = window_counter(app.state.redis).calls
            assert await _outcomes(guard, [FakeConnection(app, None)] * 5) == ["ok"] * 5
            assert window_counter(app.state.redis).calls - calls == 1
    finally:
        await app.state.redis.aclose()
        app.state.redis = original


async def _outcomes(guard, connections) -> list[str]:
    """Run the guard for every connection at once; "ok" or the refusal's scope, in order."""
    import asyncio

    async def one(connection) -> str:
        try:
            await guard(connection, None)
        except Exception as refused:  # noqa: BLE001 -- the refusal is what is being counted
            return refused.detail["scope"]
        return "ok"

    return list(await asyncio.gather(*[one(c) for c in connections]))


async def test_requests_reaching_a_limit_together_share_one_count_and_each_gets_its_own(app, client, redis):
    """Concurrent requests share script calls (api.ratelimit.window_counter), yet each is counted and
    refused exactly as one call per request would: never more than the limit through, per customer."""
    from api.ratelimit import window_counter

    await forget_limits(redis)
    # An hour's window: a window boundary inside the test (milliseconds) is all but impossible.
    guard = rate_limited("probe_crowd", per_customer=(5, 3600), per_ip=(18, 3600))
    alice, bella, carol = (Principal(kind="customer", id=i) for i in (11, 12, 13))
    crowd = [FakeConnection(app, alice)] * 12 + [FakeConnection(app, bella)] * 3 + [FakeConnection(app, carol)] * 7
    counter = window_counter(app.state.redis)
    calls_before = counter.calls
    with limits_on(app):
        outcomes = await _outcomes(guard, crowd)
    # 22 requests from one address (limit 18): the address's last 4 in arrival order are refused for it.
    # Every request is counted in both windows, so the per-customer counts are those of arrival order too.
    assert outcomes[:12] == ["ok"] * 5 + ["customer"] * 7
    assert outcomes[12:15] == ["ok"] * 3
    assert outcomes[15:18] == ["ok"] * 3  # carol's 1st-3rd: address count 16-18
    assert outcomes[18:] == ["ip"] * 4  # address count 19-22 (carol's 4th and 5th were within her 5 too)
    assert await redis.get(f"rl:probe_crowd:customer:11:{_window_start(3600)}") == b"12"
    assert 1 <= counter.calls - calls_before < 22 / 4, "the crowd should share script calls"
    await forget_limits(redis)


def _window_start(window: int) -> int:
    import time

    now = int(time.time())
    return now - now % window


async def test_a_request_cancelled_while_counting_leaves_the_others_their_counts(app, client, redis):
    import asyncio

    await forget_limits(redis)
    guard = rate_limited("probe_gone", per_customer=(3, 3600))
    dana = Principal(kind="customer", id=21)
    with limits_on(app):
        tasks = [asyncio.create_task(guard(FakeConnection(app, dana), None)) for _ in range(4)]
        await asyncio.sleep(0)  # every task is waiting for the shared call now
        tasks[0].cancel()  # its client hung up
        results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    refused = [r for r in results[1:] if isinstance(r, Exception)]
    # The hung-up request was counted as well (as when each request sent its own call): 4 in the window.
    assert results[1:3] == [None, None] and len(refused) == 1 and refused[0].detail["scope"] == "customer"
    assert await redis.get(f"rl:probe_gone:customer:21:{_window_start(3600)}") == b"4"
    await forget_limits(redis)


async def test_check_in_is_limited_per_customer(app, client, redis):
    from tests.factories import customer_headers, make_customer

    await forget_limits(redis)
    customer = await make_customer()
    headers = customer_headers(customer)
    with limits_on(app):
        statuses = [(await client.post("/app/check-ins", headers=headers)).status_code for _ in range(12)]
    # One check-in, then "already checked in" until the window's 10 taps are used, then 429.
    assert statuses[0] == 201 and set(statuses[1:10]) == {409} and statuses[10:] == [429, 429]
    await forget_limits(redis)


async def _fill_ip_window(redis, name: str, limit: int, window: int, host: str = "127.0.0.1") -> None:
    """Count an address as having used its whole window already (this window and the next, so a
    window boundary during the test changes nothing): what many callers behind it would have done."""
    import time

    now = int(time.time())
    for start in (now - now % window, now - now % window + window):
        await redis.set(f"rl:{name}:ip:{host}:{start}", limit, ex=2 * window + 1)


async def test_redemption_is_limited_per_customer_and_per_ip(app, client, redis):
    from kernel.settings import get_settings
    from tests.factories import customer_headers, make_customer

    await forget_limits(redis)
    per_customer, _ = get_settings().rate_limit.redemption_per_customer
    per_ip, ip_window = get_settings().rate_limit.redemption_per_ip
    hammering, neighbour = await make_customer(), await make_customer()

    def redeem(customer, i: int):
        # An item that does not exist: the limit is counted before anything else is looked at.
        return client.post("/app/mall/redemptions", json={"item_id": 999_999_999, "quantity": 1},
                           headers={**customer_headers(customer), "Idempotency-Key": f"rl-redeem-{i:04d}"})

    with limits_on(app):
        statuses = [(await redeem(hammering, i)).status_code for i in range(per_customer + 2)]
        assert statuses[:per_customer] == [404] * per_customer and statuses[per_customer:] == [429, 429]
        limited = await redeem(hammering, 9999)
        assert limited.json()["detail"]["scope"] == "customer" and int(limited.headers["retry-after"]) >= 1
        # The same address, another customer: not limited by the first one's taps.
        assert (await redeem(neighbour, 0)).status_code == 404

        await _fill_ip_window(redis, "redemption", per_ip, ip_window)
        crowded = await redeem(await make_customer(), 0)
        assert crowded.status_code == 429, crowded.text
        assert crowded.json()["code"] == "rate_limited" and crowded.json()["detail"]["scope"] == "ip"
    await forget_limits(redis)


async def test_check_in_is_limited_per_ip(app, client, redis):
    from kernel.settings import get_settings
    from points_mall.models import CheckIn
    from tests.factories import customer_headers, make_customer

    await forget_limits(redis)
    per_ip, window = get_settings().rate_limit.check_in_per_ip
    customer = await make_customer()
    with limits_on(app):
        await _fill_ip_window(redis, "check_in", per_ip, window)
        r = await client.post("/app/check-ins", headers=customer_headers(customer))
    assert r.status_code == 429 and r.json()["detail"]["scope"] == "ip"
    assert not await CheckIn.filter(customer_id=customer.id).exists()  # refused before anything was written
    await forget_limits(redis)


async def _staff_logins(base: str, attempts: list[tuple[str, str]]) -> list[int]:
    """(X-Forwarded-For, username) per attempt, each with a wrong password; the statuses."""
    import httpx

    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        statuses = []
        for forwarded_for, username in attempts:
            response = await http.post("/admin/auth/login", json={"username": username, "password": "wrong password!"},
                                       headers={"X-Forwarded-For": forwarded_for})
            statuses.append(response.status_code)
        return statuses


async def test_a_spoofed_x_forwarded_for_does_not_reset_the_staff_login_limit(redis):
    """No proxy is trusted by default: the limit follows the socket's address, whatever the header says."""
    from tests.live_server import live_server_url

    await forget_limits(redis)
    # Day-long windows: fixed windows start at multiples of their length, so a minute-long one could roll
    # over between two requests of a slow run and reset the count the test relies on.
    env = {"RATE_LIMIT_ENABLED": "1", "RATE_LIMIT_LOGIN_PER_IP": "3/86400"}
    async with live_server_url(**env) as base:
        statuses = await _staff_logins(base, [(f"203.0.113.{i}", f"guess-{i}") for i in range(6)])
    assert statuses == [401, 401, 401, 429, 429, 429]
    await forget_limits(redis)


async def test_x_forwarded_for_is_honoured_from_a_configured_proxy_only(redis):
    from tests.live_server import live_server_url

    await forget_limits(redis)
    env = {"RATE_LIMIT_ENABLED": "1", "RATE_LIMIT_LOGIN_PER_IP": "3/86400", "TRUSTED_PROXIES": "127.0.0.1/32"}
    async with live_server_url(**env) as base:
        # Behind the proxy each real client has its own window.
        spread = await _staff_logins(base, [(f"203.0.113.{i}", f"user-{i}") for i in range(6)])
        one_client = await _staff_logins(base, [("198.51.100.7", f"other-{i}") for i in range(4)])
    assert spread == [401] * 6
    assert one_client == [401, 401, 401, 429]
    await forget_limits(redis)


async def test_staff_login_is_limited_per_username_across_addresses(redis):
    """Guesses at one account from many addresses (a botnet behind a trusted proxy) still stop."""
    from tests.live_server import live_server_url

    await forget_limits(redis)
    env = {"RATE_LIMIT_ENABLED": "1", "RATE_LIMIT_LOGIN_PER_IP": "100/60",
           "RATE_LIMIT_STAFF_LOGIN_PER_USERNAME": "5/86400", "TRUSTED_PROXIES": "127.0.0.1"}
    async with live_server_url(**env) as base:
        statuses = await _staff_logins(base, [(f"203.0.113.{i}", "Head.Nurse") for i in range(7)])
        # The same name in other letter case is the same account; another account is not affected.
        other_case = await _staff_logins(base, [("203.0.113.99", "head.nurse")])
        other_account = await _staff_logins(base, [("203.0.113.98", "front.desk")])
    assert statuses == [401] * 5 + [429, 429]
    assert other_case == [429] and other_account == [401]
    await forget_limits(redis)


async def test_a_closed_redis_client_is_not_kept_by_its_counter():
    import gc
    import weakref

    from arq.connections import ArqRedis

    from api.ratelimit import window_counter

    client = ArqRedis.from_url("redis://127.0.0.1:1")
    window_counter(client)
    gone = weakref.ref(client)
    await client.aclose()
    del client
    gc.collect()
    assert gone() is None
