"""Redis-backed rate limits (fixed windows, shared by every replica) as route guards.

`rate_limited("check_in", per_customer=..., per_ip=...)` refuses with 429 `rate_limited` and a
Retry-After header once a caller exceeds its window. If Redis is unreachable the request is let
through: the limits protect capacity and WeChat quotas, while correctness (one check-in per day,
stock) never depends on them.
"""

from __future__ import annotations

import functools
import time
import weakref
from typing import Any

import structlog
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from redis.exceptions import RedisError

from api.security import Guard
from kernel.errors import TooManyRequests
from kernel.settings import get_settings
from kernel.together import Together

log = structlog.get_logger(__name__)


class RateLimited(TooManyRequests):
    code = "rate_limited"
    default_message = "Too many requests; wait a moment and try again."


async def _hit(redis, key: str, limit: int, window: int) -> int | None:
    """Count one request in one window; returns seconds to wait when over the limit."""
    [(_, wait)] = await _hit_all(redis, [(key, (limit, window))])
    return wait


# INCR every window key, and give a key its expiry when this request created it, in one script: one
# command and one reply instead of a pipeline of 2 per key (redis-py's pipeline bookkeeping cost more
# server CPU than the round trip itself on the check-in path; docs/benchmarks.md, round 4).
_COUNT_SCRIPT = """
local counts = {}
for i, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  if count == 1 then redis.call('EXPIRE', key, ARGV[i]) end
  counts[i] = count
end
return counts
"""


async def _count_windows(client: weakref.ref, asks: list[tuple[list[str], list[int]]]) -> list[list[int]]:
    """One script call for the asks of a pass (`kernel.together`): each ask's window keys and expiries in, its
    own counts out. Redis runs the INCRs in the order of the keys, so each request's counts are what a call of
    its own, sent in the same order, would have returned."""
    redis = client()
    if redis is None:  # the client was closed and dropped meanwhile (a test's app): nothing to count in
        raise RedisError("the Redis client is gone")
    script = redis.register_script(_COUNT_SCRIPT)  # EVALSHA, and the source once on NOSCRIPT
    counts = await script(keys=[k for keys, _ in asks for k in keys], args=[e for _, expiries in asks for e in expiries])
    answers, start = [], 0
    for keys, _ in asks:
        answers.append(counts[start:start + len(keys)])
        start += len(keys)
    return answers


# One per Redis client (the app's; tests make apps with their own), dropped with the client: the counter holds
# the client weakly. The requests that reach a limit in the same pass of the event loop share one script call:
# one EVALSHA through redis-py costs this server about 75 µs of CPU (its command and connection bookkeeping,
# the read timeout, the wake-up), a fifth of the cheapest authenticated write (docs/benchmarks.md, round 8).
_COUNTERS: weakref.WeakKeyDictionary[Any, Together[tuple[list[str], list[int]], list[int]]] = (
    weakref.WeakKeyDictionary())


def window_counter(redis: Any) -> Together[tuple[list[str], list[int]], list[int]]:
    counter = _COUNTERS.get(redis)
    if counter is None:
        counter = _COUNTERS[redis] = Together(functools.partial(_count_windows, weakref.ref(redis)), most=500)
    return counter


async def _hit_all(redis, checks: list[tuple[str, tuple[int, int]]]) -> list[tuple[str, int | None]]:
    """Count one request in each check's current window (one round trip, shared with the requests of the same
    pass: `window_counter`).

    Returns (key, seconds to wait) per check; the wait is None while under the limit.
    """
    now = int(time.time())
    starts = [now - now % window for _, (_, window) in checks]
    counts = await window_counter(redis).ask((
        [f"rl:{key}:{start}" for (key, _), start in zip(checks, starts)],
        [window + 1 for _, (_, window) in checks],
    ))
    return [
        (key, (start + window - now or 1) if count > limit else None)
        for (key, (limit, window)), start, count in zip(checks, starts, counts)
    ]


def _client_ip(connection: ASGIConnection) -> str:
    return connection.client.host if connection.client else "unknown"


async def enforce_limit(state: Any, name: str, scope: str, ident: str, limit: tuple[int, int]) -> None:
    """Count one request against `name` for (scope, ident), e.g. ("username", "alice"); 429 when over.

    For limits keyed on something only the body carries (a staff username), called by the handler
    once the body is decoded. Fails open like the guards.
    """
    if not state.get("rate_limit_enabled", get_settings().rate_limit.enabled):
        return
    count, window = limit
    try:
        wait = await _hit(state.redis, f"{name}:{scope}:{ident}", count, window)
    except (RedisError, OSError) as exc:
        log.warning("ratelimit.redis_unavailable", limit=name, error=type(exc).__name__)
        return
    if wait is not None:
        error = RateLimited(limit=name, retry_after=wait, scope=scope)
        error.headers = {"Retry-After": str(wait)}
        raise error


def rate_limited(
    name: str,
    *,
    per_customer: tuple[int, int] | None = None,
    per_ip: tuple[int, int] | None = None,
) -> Guard:
    async def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        state = connection.app.state
        if not state.get("rate_limit_enabled", get_settings().rate_limit.enabled):
            return
        redis = state.redis
        checks: list[tuple[str, tuple[int, int]]] = []
        if per_ip:
            checks.append((f"{name}:ip:{_client_ip(connection)}", per_ip))
        principal = connection.state.get("principal")
        if per_customer and principal is not None:
            checks.append((f"{name}:{principal.kind}:{principal.id}", per_customer))
        if not checks:
            return
        try:
            waits = await _hit_all(redis, checks)
        except (RedisError, OSError) as exc:
            log.warning("ratelimit.redis_unavailable", limit=name, error=type(exc).__name__)
            return
        for key, wait in waits:
            if wait is not None:
                error = RateLimited(limit=name, retry_after=wait, scope=key.split(":")[1])
                error.headers = {"Retry-After": str(wait)}
                raise error

    guard.__name__ = f"rate_limited_{name}"
    return guard


def customer_action_limited(name: str) -> Guard:
    """A customer action (check-in, redemption) limited per customer and per client address, with the limits
    `<name>_per_customer` and `<name>_per_ip` of the rate-limit settings."""
    limits = get_settings().rate_limit
    return rate_limited(name, per_customer=getattr(limits, f"{name}_per_customer"),
                        per_ip=getattr(limits, f"{name}_per_ip"))
