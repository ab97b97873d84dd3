"""Test set-up: a fresh MariaDB database and a Redis database for this run, dropped at the end.

The environment is set before any project module is imported, so settings are read once with
the test values (STYLE.md: tests set their environment before importing the app).
"""

from __future__ import annotations

import os
import secrets
import socket

_RUN = secrets.token_hex(4)
MYSQL_HOST = os.environ.get("TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("TEST_MYSQL_PORT", "3306"))
MYSQL_USER = os.environ.get("TEST_MYSQL_USER", "root")
MYSQL_PASSWORD = os.environ.get("TEST_MYSQL_PASSWORD", "")
TEST_DATABASE = f"clinic_test_{_RUN}"
REDIS_BASE = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")
# The run's claim on a Redis logical database: only an empty database is taken, and the claim key
# makes a second run (or anyone else) see it as taken. The suite flushes only the database it claimed.
REDIS_CLAIM_KEY = "clinic-test:claimed-by"


def _claim_redis_db() -> int:
    import redis as redis_sync

    wanted = os.environ.get("TEST_REDIS_DB")
    candidates = [int(wanted)] if wanted else list(range(1, 16))
    claim = f"{socket.gethostname()}:{os.getpid()}:{_RUN}"
    for number in candidates:
        conn = redis_sync.Redis.from_url(f"{REDIS_BASE}/{number}")
        try:
            if _left_by_dead_run(conn.get(REDIS_CLAIM_KEY)):
                # A run of this suite on this host that was killed before it could flush: its keys are
                # test keys, so the database is taken back rather than lost for the claim's lifetime.
                conn.flushdb()
            # dbsize first: a database holding anybody's keys is never ours to flush.
            if conn.dbsize() == 0 and conn.set(REDIS_CLAIM_KEY, claim, nx=True, ex=6 * 3600):
                if conn.dbsize() == 1:
                    return number
                conn.delete(REDIS_CLAIM_KEY)
        finally:
            conn.close()
    raise RuntimeError(
        f"no empty Redis logical database at {REDIS_BASE} (tried {candidates}); the suite flushes the "
        "database it uses, so it only takes an empty one. Free one or point TEST_REDIS_URL/TEST_REDIS_DB elsewhere."
    )


def _left_by_dead_run(value: bytes | None) -> bool:
    if not value:
        return False
    host, _, rest = value.decode(errors="replace").partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


REDIS_DB = _claim_redis_db()

os.environ.update(
    {
        "APP_ENV": "test",
        "DATABASE_URL": f"mysql://{MYSQL_USER}:{MYSQL_PASSWORD}@{MYSQL_HOST}:{MYSQL_PORT}/{TEST_DATABASE}",
        "REDIS_URL": f"{REDIS_BASE}/{REDIS_DB}",
        "ARQ_QUEUE_NAME": f"arq:test:{_RUN}",
        "SECRET_KEY": "test-secret-key-" + "x" * 32,
        "WECHAT_MODE": "sandbox",
        "EMBEDDED_WORKER": "0",
        # Concurrency tests fire hundreds of requests from one address; the limits have their own test.
        "RATE_LIMIT_ENABLED": "0",
        "DB_POOL_MAX": os.environ.get("DB_POOL_MAX", "30"),
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
        "DATA_DIR": f"/tmp/clinic-test-{_RUN}",
    }
)

from collections.abc import AsyncIterator  # noqa: E402
from contextlib import asynccontextmanager  # noqa: E402

import aiomysql  # noqa: E402
import httpx  # noqa: E402
import pytest  # noqa: E402
from arq.connections import ArqRedis  # noqa: E402

from kernel import clock, db  # noqa: E402


async def _admin_sql(*statements: str) -> None:
    conn = await aiomysql.connect(
        host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, password=MYSQL_PASSWORD, autocommit=True
    )
    try:
        async with conn.cursor() as cur:
            for statement in statements:
                await cur.execute(statement)
    finally:
        conn.close()


@pytest.fixture(scope="session", autouse=True)
async def database():
    """Create the run's database, apply the committed migrations (the real path), connect."""
    await _admin_sql(
        f"DROP DATABASE IF EXISTS `{TEST_DATABASE}`",
        f"CREATE DATABASE `{TEST_DATABASE}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
    )
    try:
        await db.migrate()
        await db.init_db()
        # What the app and the worker do at start-up; tests also call services and jobs directly.
        import rooms

        rooms.install()
        yield TEST_DATABASE
    finally:
        await db.close_db()
        await _admin_sql(f"DROP DATABASE IF EXISTS `{TEST_DATABASE}`")


# Autouse: a run whose tests never ask for Redis must still flush (release) the database it claimed.
@pytest.fixture(scope="session", autouse=True)
async def redis():
    pool = ArqRedis.from_url(os.environ["REDIS_URL"])
    # The database was empty when claimed (_claim_redis_db); only the claim key is left to keep.
    yield pool
    await pool.flushdb()  # the claimed database: ours alone; the flush also releases the claim
    await pool.aclose()


@pytest.fixture(autouse=True)
def real_clock():
    """Every test starts on the real clock; a test that injects time cannot leak it."""
    clock.set_now(None)
    yield
    clock.set_now(None)


@pytest.fixture(scope="session")
async def app(database, redis):
    from api.app import create_app

    return create_app(embedded_worker=False)


@asynccontextmanager
async def serve_in_loop(app) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client wired to the app in *this* event loop (Litestar's own test client runs the
    app on a thread of its own, which would move database connections between loops and hide
    real concurrency). The app's lifespan runs around it."""
    async with app.state.clinic_lifespan(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as http:
            yield http


@pytest.fixture(scope="session")
async def client(app):
    async with serve_in_loop(app) as http:
        yield http
