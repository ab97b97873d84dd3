"""SIGTERM ends the server within a bound in every state, including after MariaDB killed its connections
in the middle of a burst (a failover, a DBA's KILL): supervisors and rolling deploys rely on it."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path

import httpx

from bench.harness import bench_database, bench_env, mysql_admin
from tests.failures.support import SERVER_START_SECONDS, wait_for

ROOT = Path(__file__).resolve().parents[2]
# uvicorn's graceful drain (api/__main__.py) plus the lifespan's bounded steps, with room for a slow machine.
SHUTDOWN_BOUND_SECONDS = 25


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _server_connections(database: str) -> list[int]:
    import aiomysql

    from bench.harness import MYSQL

    conn = await aiomysql.connect(autocommit=True, **MYSQL)
    try:
        async with conn.cursor() as cur:
            await cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s AND ID <> CONNECTION_ID()",
                              (database,))
            return [int(row[0]) for row in await cur.fetchall()]
    finally:
        conn.close()


async def test_sigterm_after_mariadb_killed_the_servers_connections_mid_burst_exits_in_bounded_time(tmp_path):
    async with bench_database() as database:
        env = bench_env(database, LOG_LEVEL="INFO", DB_POOL_MIN="5", DB_POOL_MAX="10",
                        REDIS_URL=os.environ["REDIS_URL"], RATE_LIMIT_ENABLED="0")
        port = _free_port()
        log_path = tmp_path / "serve.log"
        with open(log_path, "wb") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "api", "serve", "--no-embedded-worker", "--no-demo", "--port", str(port),
                cwd=ROOT, env=env, stdout=log, stderr=log)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
                async def up() -> bool:
                    assert process.returncode is None, log_path.read_text()[-3000:]
                    try:
                        return (await http.get("/health/ready")).status_code == 200
                    except httpx.TransportError:
                        return False

                await wait_for(up, timeout=SERVER_START_SECONDS, what="the server to start")

                async def login(i: int) -> int | str:
                    try:
                        response = await http.post("/app/auth/login", json={"code": f"sandbox:burst-{i % 40}"})
                        return response.status_code
                    except httpx.TransportError as exc:
                        return type(exc).__name__

                burst = [asyncio.create_task(login(i)) for i in range(120)]
                victims = await wait_for(lambda: _server_connections(database), what="the server's connections")
                for thread_id in victims:
                    try:
                        await mysql_admin(f"KILL CONNECTION {thread_id}")
                    except Exception:  # already gone
                        pass
                statuses = await asyncio.gather(*burst)
                assert 500 not in statuses, statuses
                # It recovers (the pool reconnects) before being told to stop...
                await wait_for(up, timeout=30, what="the server to recover")
                # ...and its connections are killed once more with requests in flight, right before SIGTERM.
                burst = [asyncio.create_task(login(i)) for i in range(60)]
                await asyncio.sleep(0.05)
                for thread_id in await _server_connections(database):
                    try:
                        await mysql_admin(f"KILL CONNECTION {thread_id}")
                    except Exception:
                        pass
                started = time.monotonic()
                process.send_signal(signal.SIGTERM)
                try:
                    code = await asyncio.wait_for(process.wait(), timeout=SHUTDOWN_BOUND_SECONDS)
                except asyncio.TimeoutError:
                    raise AssertionError(f"still running {SHUTDOWN_BOUND_SECONDS} s after SIGTERM:\n"
                                         + log_path.read_text()[-3000:]) from None
                took = time.monotonic() - started
                print(f"exited {took:.1f} s after SIGTERM")
                await asyncio.gather(*burst)
            # uvicorn ends with the signal it was sent once it has shut down cleanly (0 on older releases).
            assert code in (0, -signal.SIGTERM), (code, log_path.read_text()[-3000:])
            assert b"shutdown.step_timed_out" not in log_path.read_bytes(), log_path.read_text()[-3000:]
            assert took < SHUTDOWN_BOUND_SECONDS
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
