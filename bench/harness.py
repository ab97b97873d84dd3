"""The load harness: a server started on a fresh MariaDB database, and a concurrent HTTP client.

Every benchmark reports requests/s, p50, p99 and errors, and compares them with a baseline
measured in the same run (this machine is noisy, so only ratios are worth reporting).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import statistics
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiomysql
import httpx

ROOT = Path(__file__).resolve().parent.parent
MYSQL = dict(
    host=os.environ.get("BENCH_MYSQL_HOST", "127.0.0.1"),
    port=int(os.environ.get("BENCH_MYSQL_PORT", "3306")),
    user=os.environ.get("BENCH_MYSQL_USER", "root"),
    password=os.environ.get("BENCH_MYSQL_PASSWORD", ""),
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


@dataclass
class Result:
    name: str
    concurrency: int
    requests: int
    seconds: float
    latencies_ms: list[float] = field(repr=False)
    statuses: Counter

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status == "exc" or int(status) >= 500)

    def row(self, baseline: "Result | None" = None) -> str:
        ratio = f"{self.rps / baseline.rps:6.2f}" if baseline and baseline.rps else "   -  "
        return (
            f"{self.name:<34} c={self.concurrency:<4} n={self.requests:<6} {self.rps:9.1f} req/s  "
            f"p50 {self.pct(50):7.1f} ms  p99 {self.pct(99):7.1f} ms  errors {self.errors:<4} "
            f"ratio {ratio}  statuses {dict(self.statuses)}"
        )


async def run_load(
    name: str,
    send: Callable[[int], Awaitable[int | str]],
    *,
    total: int,
    concurrency: int,
) -> Result:
    """Call `send(i)` for i in range(total) with at most `concurrency` in flight.

    `send` returns the HTTP status (or any label); exceptions are counted as "exc".
    """
    latencies: list[float] = []
    statuses: Counter = Counter()
    next_index = 0

    async def lane() -> None:
        nonlocal next_index
        while next_index < total:
            i = next_index
            next_index += 1
            started = time.perf_counter()
            try:
                status = await send(i)
            except Exception:
                status = "exc"
            latencies.append((time.perf_counter() - started) * 1000)
            statuses[str(status)] += 1

    started = time.perf_counter()
    await asyncio.gather(*[lane() for _ in range(concurrency)])
    return Result(name, concurrency, total, time.perf_counter() - started, latencies, statuses)


async def mysql_admin(*statements: str, database: str | None = None) -> None:
    conn = await aiomysql.connect(autocommit=True, db=database, **MYSQL)
    try:
        async with conn.cursor() as cur:
            for statement in statements:
                await cur.execute(statement)
    finally:
        conn.close()


async def sql(database: str, *statements: str, params: tuple = ()) -> list[tuple]:
    """Run statements in one transaction on the bench database; the last statement's rows (seeding, checks)."""
    conn = await aiomysql.connect(db=database, autocommit=False, **MYSQL)
    try:
        rows: list = []
        async with conn.cursor() as cur:
            for statement in statements:
                await cur.execute(statement, params or None)
                rows = await cur.fetchall()
        await conn.commit()
        return list(rows)
    finally:
        conn.close()


async def run_jobs(jobs: list[tuple[str, tuple]], *, workers: int = 1) -> float:
    """Enqueue the jobs, drain them with `workers` burst arq workers of this process; seconds taken.

    The workers run the production job functions (workers.settings) against the bench database, with the
    cron jobs and the outbox relay off so only these jobs run."""
    from arq.connections import ArqRedis, RedisSettings
    from arq.worker import Worker

    from kernel.settings import get_settings
    from kernel.wechat.miniprogram import SandboxMiniProgram
    from workers.settings import worker_kwargs

    queue = get_settings().redis.queue_name
    redis = ArqRedis.from_url(REDIS_URL)
    started = time.perf_counter()
    for name, args in jobs:
        await redis.enqueue_job(name, *args, _job_id=f"bench-{secrets.token_hex(6)}", _queue_name=queue)
    pool = [
        Worker(**worker_kwargs(
            redis_settings=RedisSettings.from_dsn(REDIS_URL), burst=True, poll_delay=0, cron_jobs=[],
            ctx={"miniprogram": SandboxMiniProgram(), "run_relay": False}, max_jobs=1,
        ))
        for _ in range(workers)
    ]
    try:
        await asyncio.gather(*[w.main() for w in pool])
    finally:
        for w in pool:
            await w.close()
    elapsed = time.perf_counter() - started
    failed = sum(w.jobs_failed for w in pool)
    await redis.delete(queue)
    await redis.aclose()
    if failed:
        raise RuntimeError(f"{failed} jobs failed: {[name for name, _ in jobs]}")
    return elapsed


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@asynccontextmanager
async def bench_database() -> AsyncIterator[str]:
    name = f"clinic_bench_{secrets.token_hex(4)}"
    await mysql_admin(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        yield name
    finally:
        await mysql_admin(f"DROP DATABASE IF EXISTS `{name}`")


def bench_env(database: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "APP_ENV": "bench",
            "DATABASE_URL": (
                f"mysql://{MYSQL['user']}:{MYSQL['password']}@{MYSQL['host']}:{MYSQL['port']}/{database}"
            ),
            "REDIS_URL": REDIS_URL,
            "ARQ_QUEUE_NAME": f"arq:bench:{database}",
            "SECRET_KEY": "bench-secret-" + "k" * 40,
            "EMBEDDED_WORKER": "0",
            # Logged as production logs (README's deploy section): one JSON access line per request, which
            # is part of what a request costs; the lines go to a file beside the server's data.
            "LOG_JSON": "1",
            "LOG_LEVEL": "INFO",
            "DB_POOL_MAX": os.environ.get("DB_POOL_MAX", "20"),
            "DATA_DIR": f"/tmp/{database}",
        }
    )
    env.update(extra)
    return env


async def stop_process(process: asyncio.subprocess.Process) -> None:
    """SIGINT (uvicorn's graceful shutdown), then kill if it hangs."""
    if process.returncode is None:
        process.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(process.wait(), timeout=15)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()


@asynccontextmanager
async def server_process(
    env: dict[str, str], *extra_args: str, tree: Path | None = None, start_seconds: float | None = None,
    module: str = "api",
) -> AsyncIterator[tuple[str, int]]:
    """Migrate and start `python -m api serve --no-demo` on a free port; yields its base URL and pid.
    `tree`: serve the code of another checkout (bench/versions.py), default this one. `start_seconds`: how
    long to wait for it (default BENCH_START_SECONDS, 40). `module`: another entry point taking the same
    arguments (bench/floor.py's server)."""
    port = _free_port()
    log_dir = Path(env.get("DATA_DIR") or f"/tmp/clinic-bench-{port}")
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"server-{port}.log"
    with open(log_path, "wb") as log:  # the child keeps its own descriptor
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", module, "serve", "--no-demo", "--port", str(port), *extra_args,
            cwd=tree or ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=log,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base) as http:
            # A loaded machine (tests running beside the bench) migrates slowly: BENCH_START_SECONDS waits longer.
            wait = start_seconds if start_seconds is not None else float(os.environ.get("BENCH_START_SECONDS", "40"))
            for _ in range(int(wait * 10)):
                if process.returncode is not None:
                    raise RuntimeError("server exited:\n" + log_path.read_text(errors="replace")[-3000:])
                try:
                    if (await http.get("/health/live")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError("server did not start in time (BENCH_START_SECONDS)")
        yield base, process.pid
    finally:
        await stop_process(process)


@asynccontextmanager
async def running_server(
    env: dict[str, str], *extra_args: str, start_seconds: float | None = None
) -> AsyncIterator[str]:
    async with server_process(env, *extra_args, start_seconds=start_seconds) as (base, _):
        yield base


def http_client(base: str, concurrency: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(base_url=base, limits=limits, timeout=30)


def machine_line() -> str:
    cores = os.cpu_count()
    try:
        mem_kb = int(next(l for l in open("/proc/meminfo") if l.startswith("MemTotal")).split()[1])
        mem = f"{mem_kb / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration):
        mem = "?"
    return f"machine: {cores} cores, {mem} RAM, python {sys.version.split()[0]}"


def median_of(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


POOL = int(os.environ.get("DB_POOL_MAX", "20"))


@dataclass
class BenchStack:
    """A running server on a fresh database, and an aiomysql pool of the server's size for the raw baseline."""

    database: str
    base: str
    pool: aiomysql.Pool

    @staticmethod
    def customer_token(customer_id: int) -> str:
        from kernel.identity.tokens import issue_customer_token

        return issue_customer_token(customer_id)[0]


@asynccontextmanager
async def bench_stack(*, autocommit: bool) -> AsyncIterator[BenchStack]:
    """Fresh database + migrated server + this process reading the server's settings (so the tokens it
    mints are signed with the server's key) + a raw aiomysql pool for the same-run baseline."""
    async with bench_database() as database:
        env = bench_env(database)
        async with running_server(env) as base:
            os.environ.update(env)
            from kernel.settings import get_settings

            get_settings.cache_clear()
            pool = await aiomysql.create_pool(db=database, minsize=POOL, maxsize=POOL, autocommit=autocommit, **MYSQL)
            try:
                yield BenchStack(database, base, pool)
            finally:
                pool.close()
                await pool.wait_closed()


async def health_baseline(http: httpx.AsyncClient, *, requests: int, concurrency: int) -> Result:
    """The framework's ceiling at this concurrency, after a warm-up: GET /health/live."""

    async def health(_: int) -> int:
        return (await http.get("/health/live")).status_code

    await run_load("warm-up", health, total=200, concurrency=concurrency)
    return await run_load("GET /health/live", health, total=requests, concurrency=concurrency)


def cli(main: Callable[[int, list[int]], Awaitable[None]], *, requests: int, concurrency: str) -> None:
    """`--requests N --concurrency 16,64` for the benchmark scripts that take just those two."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=requests)
    parser.add_argument("--concurrency", default=concurrency)
    args = parser.parse_args()
    asyncio.run(main(args.requests, [int(c) for c in args.concurrency.split(",")]))
