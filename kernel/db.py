"""Database wiring: the Tortoise config (one app per room, each with its own migrations), init and close.

MySQL/MariaDB always goes through aiomysql (Tortoise would silently prefer asyncmy if it were
installed, so `assert_mysql_driver` refuses to start in that case); SQLite is the embedded default.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

import structlog
from pymysql.constants import CLIENT
from tortoise import Tortoise, connections
from tortoise.backends.base.client import BaseDBAsyncClient, TransactionalDBClient, TransactionContextPooled
from tortoise.backends.mysql.client import MySQLClient
from tortoise.exceptions import OperationalError, TransactionManagementError
from tortoise.transactions import in_transaction

from kernel.batch import FirstStatementBegins
from kernel.errors import Conflict
from kernel.settings import DatabaseSettings, get_settings

log = structlog.get_logger(__name__)
T = TypeVar("T")

# The Tortoise apps (one per room: orders, group buys and referrals apart), each with its models
# modules and its migrations package, in the dotted form Tortoise's config takes. Every app is always
# configured: a missing module stops start-up (Tortoise cannot import it) instead of being skipped.
_APPS: dict[str, tuple[list[str], str]] = {
    "kernel": (["kernel.identity.models", "kernel.outbox.models"], "kernel.migrations"),
    "points_mall": (["points_mall.models"], "points_mall.migrations"),
    "booking": (["booking.models"], "booking.migrations"),
    "campaigns": (["campaigns.models"], "campaigns.migrations"),
    "orders": (["orders.models", "orders.product_models"], "orders.migrations"),
    "referrals": (["campaigns.referrals.models"], "campaigns.referrals.migrations"),
    "crm": (["crm.models"], "crm.migrations"),
    "reports": (["reports.models"], "reports.migrations"),
}


def connection_config(db: DatabaseSettings) -> dict[str, Any]:
    url = urlparse(db.url)
    if url.scheme == "sqlite":
        path = db.url.split("://", 1)[1]
        return {"engine": "tortoise.backends.sqlite", "credentials": {"file_path": path}}
    if url.scheme == "mysql":
        return {
            "engine": "tortoise.backends.mysql",
            "credentials": {
                "host": url.hostname or "127.0.0.1",
                "port": url.port or 3306,
                "user": unquote(url.username or "root"),
                "password": unquote(url.password or ""),
                "database": url.path.lstrip("/"),
                "minsize": db.pool_min,
                "maxsize": db.pool_max,
                # Recycle before MariaDB's wait_timeout / a proxy's idle cut-off drops the socket.
                "pool_recycle": db.pool_recycle_seconds,
                "connect_timeout": db.connect_timeout_seconds,
                "charset": "utf8mb4",
                # Several statements in one round trip (kernel.batch: the hot writes). Every statement is
                # parameterised and escaped by the driver (utf8mb4, where escaping is sound); no request
                # text is ever joined into SQL, which is what makes the flag a risk elsewhere.
                "client_flag": CLIENT.MULTI_STATEMENTS,
            },
        }
    raise ValueError(f"unsupported DATABASE_URL scheme {url.scheme!r}: use sqlite:// or mysql://")


def tortoise_config(db: DatabaseSettings | None = None) -> dict[str, Any]:
    db = db or get_settings().db
    apps: dict[str, Any] = {}
    for label, (modules, migrations) in _APPS.items():
        apps[label] = {"models": modules, "default_connection": "default", "migrations": migrations}
    return {
        "connections": {"default": connection_config(db)},
        "apps": apps,
        "use_tz": True,
        "timezone": "UTC",
    }


def assert_mysql_driver() -> None:
    from tortoise.backends.mysql import client

    driver = client.mysql.__name__
    if driver != "aiomysql":
        raise RuntimeError(
            f"Tortoise picked {driver!r} for MySQL; this service is built and tested on aiomysql. "
            "Uninstall it (pip uninstall asyncmy)."
        )


_initialised = False


async def init_db(db: DatabaseSettings | None = None) -> bool:
    """Connect the ORM. Returns False (and does nothing) when this process already did."""
    global _initialised
    if _initialised:
        return False
    config = tortoise_config(db)
    if config["connections"]["default"]["engine"] == "tortoise.backends.mysql":
        assert_mysql_driver()
    # The global fallback lets request tasks and worker jobs (other asyncio tasks than the one
    # that ran start-up) find the same connections.
    await Tortoise.init(config=config, _enable_global_fallback=True)
    _initialised = True
    return True


async def migrate(db: DatabaseSettings | None = None, *, config: dict[str, Any] | None = None) -> None:
    """Apply every room's committed migrations (the same code path as `tortoise migrate`), after the
    pre-flight found that each pending one can run on the rows the database holds (MigrationRefused if not)."""
    from tortoise.migrations.api import migrate as run_migrations

    from kernel.migration_preflight import MigrationRefused, check_pending

    config = config or tortoise_config(db)
    try:
        refusals = await check_pending(config)
        if refusals:
            raise MigrationRefused(refusals)
        await run_migrations(config=config)
    finally:
        await Tortoise.close_connections()


async def close_db(timeout: float = 3.0) -> None:
    """Close the pools, in bounded time whatever state the connections are in.

    aiomysql's pool waits for every checked-out connection to come back before it counts as closed;
    one that MariaDB killed inside a transaction may never come back, and shutdown would hang. After
    `timeout` the pools are terminated (checked-out sockets closed) and closed again.
    """
    # Closing through Tortoise also clears the global fallback so a later init can set it again.
    global _initialised
    try:
        await asyncio.wait_for(Tortoise.close_connections(), timeout=timeout)
    except asyncio.TimeoutError:
        log.warning("db.close_timed_out", seconds=timeout)
        for client in connections.all():
            pool = getattr(client, "_pool", None)
            if pool is not None and hasattr(pool, "terminate"):
                pool.terminate()
        await asyncio.wait_for(Tortoise.close_connections(), timeout=1)
    finally:
        _initialised = False


_RETRYABLE_MYSQL_ERRNOS = {1213, 1205}  # deadlock found; lock wait timeout


def mysql_errno(exc: BaseException) -> int | None:
    """The MySQL error number behind a driver or Tortoise error (Tortoise wraps pymysql's), if any."""
    for candidate in (exc, exc.__cause__, exc.__context__, *getattr(exc, "args", ())):
        args = getattr(candidate, "args", None)
        if args and isinstance(args[0], int):
            return args[0]
    return None


class RaceLost(Conflict):
    """The transaction lost a race that running it again resolves (two first logins for one openid).

    `run_in_transaction` runs the work again; a caller that still loses gets a 409.
    """

    default_message = "A concurrent request changed the same data; retry."


def is_retryable(exc: BaseException) -> bool:
    """A deadlock or lock-wait timeout (InnoDB rolled the transaction back), or a lost race: run it again."""
    return isinstance(exc, RaceLost) or mysql_errno(exc) in _RETRYABLE_MYSQL_ERRNOS


def transaction():
    """One transaction, opened at the edge; callers use `run_in_transaction` (or `run_job_transaction`).

    On MySQL/MariaDB its BEGIN waits for the first statement and goes with it when that is a batch
    (`kernel.batch.FirstStatementBegins`); inside another transaction it is a savepoint, as Tortoise's."""
    client = connections.get("default")
    if isinstance(client, MySQLClient) and not isinstance(client, TransactionalDBClient):
        return TransactionContextPooled(FirstStatementBegins(client), client._pool_init_lock)
    return in_transaction("default")


async def run_in_transaction(work: Callable[[BaseDBAsyncClient], Awaitable[T]], *, attempts: int = 4) -> T:
    """Run `work(conn)` in one transaction at the edge, again when InnoDB picks it as a deadlock victim.

    A deadlock (or lock-wait timeout) rolls the whole transaction back, so running it again is safe as
    long as the work touches only the database; every other error propagates at once. Routes reach it
    through the `db` dependency (api/deps.py), jobs through `kernel.jobs.run_job_transaction`;
    services never open transactions.
    """
    for attempt in range(attempts):
        try:
            async with transaction() as conn:
                return await work(conn)
        except (OperationalError, TransactionManagementError, RaceLost) as exc:
            if attempt == attempts - 1 or not is_retryable(exc):
                raise
            log.info("db.deadlock_retry", attempt=attempt + 1)
    raise AssertionError("unreachable")


def __getattr__(name: str) -> Any:
    # `TORTOISE_ORM` is read by the `tortoise` CLI (see [tool.tortoise] in pyproject.toml). Built on
    # access, not at import: reading the settings may create the development secret file.
    if name == "TORTOISE_ORM":
        return tortoise_config()
    raise AttributeError(name)
