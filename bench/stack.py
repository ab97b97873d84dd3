"""The stack a benchmark runs on: a server on a fresh database (MariaDB, or the embedded SQLite + Redis),
set-up SQL for seeding rows directly, and a raw client on the same database for the same-run baselines."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiomysql

from bench.harness import MYSQL, bench_database, bench_env, server_process
from bench.load import mariadb_pid

# Per-IP limits sized for a load that comes from one address (production traffic comes from many);
# per-customer limits stay at their defaults and every benchmark customer sends once, so the limiter's
# Redis round trips stay in the measured path and never refuse.
RATE_LIMITS = {
    "RATE_LIMIT_ENABLED": "1",
    "RATE_LIMIT_CHECK_IN_PER_IP": "100000000/60",
    "RATE_LIMIT_REDEMPTION_PER_IP": "100000000/60",
    "RATE_LIMIT_LOGIN_PER_IP": "100000000/60",
}
POOL = int(os.environ.get("DB_POOL_MAX", "20"))


class RawTransaction:
    """One raw transaction: `execute` returns the affected row count, `fetchone` the last result's row."""

    def __init__(self, cursor: Any, sqlite: bool) -> None:
        self._cursor = cursor
        self._sqlite = sqlite
        self.lastrowid: int | None = None

    async def execute(self, statement: str, params: tuple = ()) -> int:
        if self._sqlite:
            statement = _to_sqlite(statement)
            cursor = await self._cursor.execute(statement, params)
            self._last = cursor
            self.lastrowid = cursor.lastrowid
            return cursor.rowcount
        changed = await self._cursor.execute(statement, params)
        self.lastrowid = self._cursor.lastrowid
        return changed

    async def fetchone(self) -> Any:
        if self._sqlite:
            return await self._last.fetchone()
        return await self._cursor.fetchone()


def _to_sqlite(statement: str) -> str:
    statement = statement.replace(" FOR UPDATE", "").replace("%s", "?").replace("%%", "%")
    return statement


@dataclass
class Stack:
    kind: str  # "mariadb" | "embedded"
    base: str
    server_pid: int
    db_pid: int | None
    _mysql_database: str | None
    _sqlite_path: str | None
    _pool: Any = None  # aiomysql pool (autocommit) or one aiosqlite connection
    _sqlite_lock: asyncio.Lock | None = None

    @staticmethod
    def customer_token(customer_id: int) -> str:
        from kernel.identity.tokens import issue_customer_token

        return issue_customer_token(customer_id)[0]

    # --- set-up SQL (not measured) -------------------------------------------------------------------
    async def sql(self, statement: str, params: tuple = (), *, many: list[tuple] | None = None,
                  fetch: bool = False) -> Any:
        """Run one set-up statement; returns the rows when `fetch`, else the last inserted id."""
        if self._sqlite_path:
            conn = sqlite3.connect(self._sqlite_path, timeout=30)
            try:
                cur = conn.cursor()
                if many is not None:
                    cur.executemany(_to_sqlite(statement), many)
                else:
                    cur.execute(_to_sqlite(statement), params)
                rows = cur.fetchall() if fetch else cur.lastrowid
                conn.commit()
                return rows
            finally:
                conn.close()
        conn = await aiomysql.connect(db=self._mysql_database, autocommit=True, **MYSQL)
        try:
            async with conn.cursor() as cur:
                if many is not None:
                    await cur.executemany(statement, many)
                else:
                    await cur.execute(statement, params)
                return list(await cur.fetchall()) if fetch else cur.lastrowid
        finally:
            conn.close()

    # --- the raw baselines (measured) ------------------------------------------------------------------
    @asynccontextmanager
    async def raw_transaction(self) -> AsyncIterator[RawTransaction]:
        if self._sqlite_path:
            assert self._sqlite_lock is not None
            # SQLite has one writer; the server's own driver also serialises on one connection.
            async with self._sqlite_lock:
                conn = self._pool
                await conn.execute("BEGIN IMMEDIATE")
                try:
                    yield RawTransaction(conn, sqlite=True)
                    await conn.commit()
                except BaseException:
                    await conn.rollback()
                    raise
            return
        async with self._pool.acquire() as conn:
            await conn.begin()
            try:
                async with conn.cursor() as cur:
                    yield RawTransaction(cur, sqlite=False)
                await conn.commit()
            except BaseException:
                await conn.rollback()
                raise

    async def raw_statement(self, statement: str, params: tuple = ()) -> int:
        """One autocommit statement (the raw conditional UPDATE); returns the affected row count."""
        if self._sqlite_path:
            assert self._sqlite_lock is not None
            async with self._sqlite_lock:
                cursor = await self._pool.execute(_to_sqlite(statement), params)
                await self._pool.commit()
                return cursor.rowcount
        async with self._pool.acquire() as conn, conn.cursor() as cur:
            return await cur.execute(statement, params)


@asynccontextmanager
async def open_stack(kind: str, *server_args: str) -> AsyncIterator[Stack]:
    """A fresh database, a migrated server on it, and this process reading the server's settings (so the
    tokens it mints are signed with the server's key)."""
    from kernel.settings import get_settings

    if kind == "mariadb":
        async with bench_database() as database:
            env = bench_env(database, **RATE_LIMITS)
            async with server_process(env, *server_args) as (base, pid):
                os.environ.update(env)
                get_settings.cache_clear()
                pool = await aiomysql.create_pool(db=database, minsize=POOL, maxsize=POOL, autocommit=True, **MYSQL)
                try:
                    yield Stack("mariadb", base, pid, mariadb_pid(), database, None, pool)
                finally:
                    pool.close()
                    await pool.wait_closed()
        return
    if kind != "embedded":
        raise ValueError(kind)
    import aiosqlite

    data_dir = f"/tmp/clinic_bench_embedded_{secrets.token_hex(4)}"
    path = f"{data_dir}/clinic.sqlite3"
    os.makedirs(data_dir)
    env = bench_env("unused", **RATE_LIMITS)
    env.update({"DATABASE_URL": f"sqlite://{path}", "DATA_DIR": data_dir})
    env.pop("REDIS_URL", None)
    env.pop("ARQ_QUEUE_NAME", None)
    try:
        async with server_process(env, *server_args) as (base, pid):
            os.environ.update(env)
            os.environ.pop("REDIS_URL", None)
            get_settings.cache_clear()
            conn = await aiosqlite.connect(path, timeout=30, isolation_level=None)
            await conn.execute("PRAGMA journal_mode=WAL")
            try:
                yield Stack("embedded", base, pid, None, None, path, conn, asyncio.Lock())
            finally:
                await conn.close()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def new_tag() -> str:
    return secrets.token_hex(4)


