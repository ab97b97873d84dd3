"""Small factory helpers: make rows with sensible defaults and override what a test cares about."""

from __future__ import annotations

import secrets
from typing import Any

from arq.worker import Worker

from kernel import clock, crypto
from kernel.db import transaction
from kernel.identity.models import Customer, StaffMember
from kernel.identity.service import create_staff, new_referral_code
from kernel.identity.tokens import issue_customer_token, issue_staff_token
from kernel.wechat.miniprogram import SandboxMiniProgram


async def make_customer(**overrides: Any) -> Customer:
    now = clock.now()
    phone = overrides.pop("phone", None)
    fields: dict[str, Any] = dict(
        openid="test-" + secrets.token_hex(10),
        nickname="Test " + secrets.token_hex(2),
        referral_code=new_referral_code(),
        created_at=now,
        last_login_at=now,
    )
    if phone:
        fields.update(
            phone_sealed=crypto.seal(phone), phone_hash=crypto.lookup_hash(phone), phone_masked=crypto.mask_phone(phone),
            phone_last4_hash=crypto.last4_hash(phone),
        )
    fields.update(overrides)
    return await Customer.create(**fields)


async def make_staff(*roles: str, password: str = "correct horse battery", **overrides: Any) -> StaffMember:
    async with transaction() as conn:
        return await create_staff(
            conn,
            username=overrides.pop("username", "staff_" + secrets.token_hex(4)),
            password=password,
            roles=list(roles) or ["admin"],
        )


def customer_headers(customer: Customer | int) -> dict[str, str]:
    customer_id = customer if isinstance(customer, int) else customer.id
    token, _ = issue_customer_token(customer_id)
    return {"Authorization": f"Bearer {token}"}


def staff_headers(staff: StaffMember) -> dict[str, str]:
    token, _ = issue_staff_token(staff.id, staff.role_set, staff.token_version)
    return {"Authorization": f"Bearer {token}"}


async def run_worker(
    redis, *, functions=None, ctx: dict[str, Any] | None = None, timeout: float = 60, **overrides: Any
) -> Worker:
    """Run an arq worker in burst mode until the queue is empty (how arq tests itself).

    The outbox is relayed first, so jobs written by committed transactions are on the queue.
    The worker gets its own Redis pool (arq closes it on exit). Deferred jobs count as queued for
    arq's burst mode, so a test that leaves one must pass `max_burst_jobs`; the timeout turns a
    hang into a failure.
    """
    import asyncio

    from arq.connections import RedisSettings
    from kernel.outbox.service import relay_once
    from kernel.settings import get_settings
    from workers.settings import worker_kwargs

    queue = get_settings().redis.queue_name
    while await relay_once(redis, queue_name=queue):
        pass
    worker_ctx = {"miniprogram": SandboxMiniProgram(), "run_relay": False, **(ctx or {})}
    kwargs = worker_kwargs(
        redis_settings=RedisSettings.from_dsn(get_settings().redis.url),
        burst=True,
        poll_delay=0,
        cron_jobs=[],
        ctx=worker_ctx,
    )
    if functions is not None:
        kwargs["functions"] = functions
    kwargs.update(overrides)
    worker = Worker(**kwargs)
    try:
        await asyncio.wait_for(worker.main(), timeout=timeout)
    finally:
        await worker.close()
    return worker


async def blocked_on(table: str) -> int:
    """Statements of this test database, on other connections, blocked on a row of `table` (InnoDB waits
    in the 'Statistics' phase of a primary-key lookup, where INNODB_TRX does not always show it)."""
    from tortoise import Tortoise

    rows = await Tortoise.get_connection("default").execute_query_dict(
        "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND COMMAND = 'Query'"
        " AND ID <> CONNECTION_ID() AND INFO LIKE %s", [f"%`{table}`%"])
    return int(rows[0]["n"])
