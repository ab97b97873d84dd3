"""Factories of the referral tests: programs, logins with a code, consumption events, finance staff."""

from __future__ import annotations

import itertools
import secrets
from datetime import datetime, timedelta
from typing import Any

from campaigns.referrals.models import ReferralProgram, ReferrerRewardType
from campaigns.referrals.programs import create_program
from kernel import clock
from kernel.db import transaction
from kernel.identity.models import Customer
from kernel.outbox import enqueue

_consumption_ids = itertools.count(secrets.randbelow(10**9) * 1000 + 10**12)


async def make_program(*, exclusive: bool = True, **overrides: Any) -> ReferralProgram:
    """An active program that started yesterday: 50.00 yuan per friend, 7-day hold, no caps."""
    values: dict[str, Any] = dict(
        name="Bring a friend " + secrets.token_hex(2),
        is_active=True,
        starts_at=clock.now() - timedelta(days=1),
        referrer_reward_type=ReferrerRewardType.fixed_fen,
        referrer_reward_value=5000,
        hold_days=7,
        binding_valid_days=30,
        qualify_within_days=30,
        min_amount_fen=10000,
    )
    values.update(overrides)
    async with transaction() as conn:
        if exclusive:
            # Tests share one database; only this test's program should take new bindings.
            await ReferralProgram.filter(is_active=True).using_db(conn).update(is_active=False)
        return await create_program(conn, values)


async def login(client, name: str | None = None, referral_code: str | None = None) -> Customer:
    """Log in through the real route (sandbox WeChat), so the login hook binds the code."""
    body: dict[str, Any] = {"code": f"sandbox:{name or 'friend-' + secrets.token_hex(6)}"}
    if referral_code is not None:
        body["referral_code"] = referral_code
    response = await client.post("/app/auth/login", json=body)
    assert response.status_code == 200, response.text
    return await Customer.get(id=response.json()["customer_id"])


def next_consumption_id() -> int:
    return next(_consumption_ids)


async def consumption_recorded(
    customer_id: int, amount_fen: int, *, consumption_id: int | None = None, occurred_at: datetime | None = None
) -> int:
    """What the points room's record_consumption enqueues (the contract's job and arguments)."""
    consumption_id = consumption_id or next_consumption_id()
    occurred_at = occurred_at or clock.now()
    async with transaction() as conn:
        await enqueue(conn, "referrals.consumption_recorded", consumption_id, customer_id, amount_fen,
                      occurred_at.isoformat())
    return consumption_id


async def consumption_refunded(consumption_id: int, customer_id: int, refunded_fen: int) -> None:
    async with transaction() as conn:
        await enqueue(conn, "referrals.consumption_refunded", consumption_id, customer_id, refunded_fen)


async def release_due(redis) -> None:
    """Queue the hold-release job (what the cron does every ten minutes)."""
    await redis.enqueue_job(
        "referrals.release_due_rewards", _job_id="release-" + secrets.token_hex(6),
        _queue_name=_queue(),
    )


def _queue() -> str:
    from kernel.settings import get_settings

    return get_settings().redis.queue_name


async def release_at(redis, instant: datetime) -> None:
    """Run the hold-release job at an injected time, then go back to the real clock.

    Back on the real clock afterwards because tokens expire by our clock: a staff token (12 hours)
    issued before a jump of a week would be refused after it.
    """
    from tests.factories import run_worker

    clock.set_now(instant)
    try:
        await release_due(redis)
        worker = await run_worker(redis)
        assert worker.jobs_failed == 0
    finally:
        clock.set_now(None)


def local_date_of(instant: datetime) -> str:
    return instant.astimezone(clock.clinic_zone()).date().isoformat()
