"""The outbox: a job reaches arq only after its transaction commits, exactly once, even via a Redis outage."""

from __future__ import annotations

import secrets

import pytest
from arq import func
from arq.jobs import Job
from arq.connections import ArqRedis

from kernel.db import transaction
from kernel.outbox import enqueue
from kernel.outbox.models import OutboxMessage
from kernel.outbox.service import job_id_for, relay_once
from kernel.settings import get_settings
from tests.factories import run_worker
from workers import registry


async def record_delivery(ctx, key: str) -> None:
    await ctx["redis"].incr(f"test:delivered:{key}")


TEST_FUNCTIONS = [*registry.functions(), func(record_delivery, name="tests.record_delivery")]
QUEUE = get_settings().redis.queue_name


async def delivered_count(redis: ArqRedis, key: str) -> int:
    return int(await redis.get(f"test:delivered:{key}") or 0)


async def test_job_runs_once_after_commit_even_if_relayed_twice(redis):
    key = secrets.token_hex(4)
    async with transaction() as conn:
        message = await enqueue(conn, "tests.record_delivery", key)
    assert await relay_once(redis, queue_name=QUEUE) >= 1
    # Simulate a relay that crashed after enqueueing but before marking the row delivered.
    await OutboxMessage.filter(id=message.id).update(delivered_at=None)
    assert await relay_once(redis, queue_name=QUEUE) >= 1
    await run_worker(redis, functions=TEST_FUNCTIONS)
    assert await delivered_count(redis, key) == 1
    info = await Job(job_id_for(await OutboxMessage.get(id=message.id)), redis, _queue_name=QUEUE).result_info()
    assert info is not None and info.success and info.function == "tests.record_delivery"
    row = await OutboxMessage.get(id=message.id)
    assert row.delivered_at is not None


async def test_nothing_is_enqueued_after_rollback(redis):
    key = secrets.token_hex(4)

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with transaction() as conn:
            await enqueue(conn, "tests.record_delivery", key)
            raise Boom()
    assert not await OutboxMessage.filter(args=[key]).exists()
    await run_worker(redis, functions=TEST_FUNCTIONS)
    assert await delivered_count(redis, key) == 0


async def test_delivered_later_when_redis_was_down_at_commit(redis):
    key = secrets.token_hex(4)
    async with transaction() as conn:
        message = await enqueue(conn, "tests.record_delivery", key)

    dead = ArqRedis.from_url("redis://127.0.0.1:1", socket_connect_timeout=0.5)
    try:
        assert await relay_once(dead, queue_name=QUEUE) == 0
    finally:
        await dead.aclose()
    row = await OutboxMessage.get(id=message.id)
    assert row.delivered_at is None and row.attempts == 1 and row.last_error

    # Redis is back: the next relay pass delivers it and the job runs once.
    await run_worker(redis, functions=TEST_FUNCTIONS)
    assert await delivered_count(redis, key) == 1
    assert (await OutboxMessage.get(id=message.id)).delivered_at is not None


async def test_every_registered_job_name_is_unique_and_namespaced():
    names = [f.name for f in registry.functions()]
    assert len(names) == len(set(names))
    assert all("." in name for name in names)


async def test_the_message_enqueue_answers_is_the_row_stored():
    # enqueue writes its row with parameterised SQL on MariaDB: the row must be what the ORM would have
    # written (args as JSON, instants to the microsecond: the arq job id is made of the creation instant).
    from datetime import timedelta

    from kernel import clock

    run_at = clock.now() + timedelta(minutes=5)
    async with transaction() as conn:
        assert conn.capabilities.dialect == "mysql"
        built = await enqueue(conn, "kernel.prune_outbox", 7, "x", {"k": [1, 2]}, run_at=run_at)
    try:
        stored = await OutboxMessage.get(id=built.id)
        assert stored.args == built.args == [7, "x", {"k": [1, 2]}]
        assert stored.run_at == built.run_at and stored.created_at == built.created_at
        assert (stored.job_name, stored.delivered_at, stored.attempts, stored.last_error) == (
            "kernel.prune_outbox", None, 0, "")
        assert job_id_for(stored) == job_id_for(built)
    finally:
        # Relayed by a later test, a job deferred by five minutes would keep its burst worker waiting.
        await OutboxMessage.filter(id=built.id).delete()
