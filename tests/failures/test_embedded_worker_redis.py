"""Redis goes away and comes back under an API process that runs its worker inside (the embedded stack):
the worker comes back too, and readiness tells the truth about it meanwhile.

A Redis server of this test's own (a temporary port, no persistence) is stopped and started again; the
shared Redis of the suite is never touched.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import msgspec
import pytest
import redis as redis_sync

from api.app import create_app
from kernel.db import transaction
from kernel.identity.models import Customer
from kernel.outbox.service import enqueue
from kernel.settings import get_settings
from tests.conftest import serve_in_loop
from tests.factories import make_customer
from tests.failures.support import wait_for

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs a redis-server binary")


class OwnRedis:
    """`redis-server` on a free loopback port, stoppable and restartable on the same port."""

    def __init__(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis_sync.Redis.from_url(self.url)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    client.ping()
                    return
                except redis_sync.ConnectionError:
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        raise
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@contextmanager
def own_redis() -> Iterator[OwnRedis]:
    server = OwnRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def _erased(customer_id: int) -> bool:
    return await Customer.filter(id=customer_id).exclude(deleted_at=None).exists()


async def _request_erasure(customer_id: int) -> None:
    async with transaction() as conn:
        await enqueue(conn, "kernel.erase_customer", customer_id)


async def test_the_embedded_worker_survives_redis_going_away_and_coming_back():
    settings = get_settings()
    with own_redis() as server:
        own = msgspec.structs.replace(settings, redis=msgspec.structs.replace(settings.redis, url=server.url))
        app = create_app(own, embedded_worker=True)
        async with serve_in_loop(app) as http:
            async def ready_with_a_beating_worker():
                ready = await http.get("/health/ready")
                return ready.status_code == 200 and ready.json()["checks"]["workers"]["status"] == "ok" and ready

            ready = await wait_for(ready_with_a_beating_worker, timeout=30, what="the embedded worker's heartbeat")
            workers = ready.json()["checks"]["workers"]
            assert workers["alive"] >= 1 and workers["newest_heartbeat_age_seconds"] <= 6
            assert workers["embedded"] == {"running": True, "restarts": 0}

            first = await make_customer()
            await _request_erasure(first.id)
            await wait_for(lambda: _erased(first.id), timeout=30, what="the erasure before the outage")

            server.stop()

            async def not_ready():
                answer = await http.get("/health/ready")
                return answer.status_code == 503 and answer

            down = await wait_for(not_ready, timeout=20, what="readiness to see Redis gone")
            assert down.json()["detail"]["checks"]["redis"].startswith("error")
            # Requests keep committing; the erasure waits in the outbox.
            second = await make_customer()
            await _request_erasure(second.id)

            async def worker_lost() -> bool:
                return app.state.embedded_worker.restarts >= 1 or not app.state.embedded_worker.running

            await wait_for(worker_lost, timeout=20, what="the embedded worker to notice the outage")

            server.start()
            # Before the fix the worker's task had ended for good: the relay kept moving rows into the
            # queue and nothing consumed them.
            await wait_for(lambda: _erased(second.id), timeout=60, what="the erasure after Redis came back")
            ready = await wait_for(ready_with_a_beating_worker, timeout=30, what="the heartbeat after the outage")
            assert ready.json()["checks"]["workers"]["embedded"]["restarts"] >= 1
            assert ready.json()["checks"]["outbox"]["status"] == "ok"


async def test_readiness_sees_a_separate_worker_process_beat_and_stop(client, worker_processes):
    """`make worker` processes beat too; one SIGKILLed (no clean-up) drops out within seconds."""

    async def workers_alive(expected: int):
        answer = await client.get("/health/ready")
        return answer.status_code == 200 and answer.json()["checks"]["workers"]["alive"] == expected and answer

    await wait_for(lambda: workers_alive(0), timeout=15, what="earlier tests' workers to stop beating")
    worker = await worker_processes()
    ready = await wait_for(lambda: workers_alive(1), timeout=30, what="the worker process's heartbeat")
    assert ready.json()["status"] == "ok" and ready.json()["checks"]["workers"]["newest_heartbeat_age_seconds"] <= 6
    await worker.kill()
    gone = await wait_for(lambda: workers_alive(0), timeout=15, what="the killed worker's heartbeat to expire")
    # The API keeps serving (its jobs wait in the outbox) but says so.
    assert gone.json()["status"] == "degraded" and gone.json()["checks"]["workers"]["status"] == "no_heartbeat"
