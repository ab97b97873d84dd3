"""Helpers of the failure tests: a worker as an OS process, MariaDB row locks held from outside, a fake
WeChat Pay that can hang refunds, a TCP proxy that can cut Redis off, and polling with a deadline."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomysql
from litestar import Litestar, Request, Response, route

from tests.orders.wechatpay_fake import FakeWeChatPay
from tests.conftest import MYSQL_HOST, MYSQL_PASSWORD, MYSQL_PORT, MYSQL_USER, TEST_DATABASE

ROOT = Path(__file__).resolve().parents[2]
REFUNDS_PATH = "/v3/refund/domestic/refunds"
# A server start runs every migration and, on the embedded stack, loads the demo data: seconds on a quiet
# machine, minutes when the two cores are shared with other test runs. The wait is for readiness, not a
# performance claim, so it is generous.
SERVER_START_SECONDS = 240


async def wait_for(condition: Callable[[], Awaitable[Any]], *, timeout: float = 15, what: str = "condition",
                   every: float = 0.05) -> Any:
    """Poll until `condition()` is truthy (a separate process does the work, so there is nothing to await)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(every)


# --- WeChat Pay -------------------------------------------------------------------------------------

@dataclass
class HangingWeChatPay(FakeWeChatPay):
    """The fake WeChat Pay server, able to accept a refund and then never answer (until released).

    The refund is recorded before the hang: WeChat took it, the answer was lost on the way back,
    which is the case where a retry could refund twice if out_refund_no did not deduplicate it.
    """

    hang_refunds: bool = False
    refund_posts: Counter = field(default_factory=Counter)
    hanging: int = 0
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> Litestar:
        fake = self

        @route("/{path:path}", http_method=["GET", "POST"])
        async def handle(request: Request, path: str) -> Response:
            body = await request.body()
            fake.calls.append((request.method, path))
            if not fake._authorised(request, body):
                return fake._signed(401, {"code": "SIGN_ERROR", "message": "签名错误"})
            data = json.loads(body) if body else {}
            answer = fake._dispatch(request.method, path, data)
            if request.method == "POST" and path == REFUNDS_PATH:
                fake.refund_posts[data.get("out_refund_no", "")] += 1
                if fake.hang_refunds:
                    fake.hanging += 1
                    await fake.released.wait()
            return answer

        return Litestar([handle], openapi_config=None)

    def hang(self) -> None:
        self.hang_refunds = True
        self.hanging = 0
        self.released = asyncio.Event()

    def answer_again(self) -> None:
        self.hang_refunds = False
        self.released.set()

    def refunds_of(self, out_trade_no: str) -> list:
        # Refunds are submitted by transaction_id; our out_refund_no starts with the order's out_trade_no.
        return [r for r in self.refunds.values() if r.out_refund_no.startswith(out_trade_no + "-")]

    def worker_env(self, key_dir: Path) -> dict[str, str]:
        """The environment a worker process needs to use this server as WeChat Pay (keys as files)."""
        key_dir.mkdir(parents=True, exist_ok=True)
        private, public = key_dir / "merchant_private.pem", key_dir / "platform_public.pem"
        private.write_text(self.merchant_private_pem)
        public.write_text(self.platform_public_pem)
        return {
            "PAY_MODE": "wechatpay", "PAY_MCHID": self.mchid, "PAY_APPID": self.appid,
            "PAY_MERCHANT_SERIAL_NO": self.merchant_serial, "PAY_MERCHANT_PRIVATE_KEY_PATH": str(private),
            "PAY_APIV3_KEY": self.apiv3_key, "PAY_PLATFORM_PUBLIC_KEY_ID": self.public_key_id,
            "PAY_PLATFORM_PUBLIC_KEY_PATH": str(public), "PAY_API_BASE": self.base_url,
            # A refund still PROCESSING is asked about again after 0.1 s, 0.2 s... instead of 10 s.
            "PAY_RETRY_BASE_SECONDS": "0.1", "PAY_RETRY_MAX_SECONDS": "1",
        }


# --- the worker process -------------------------------------------------------------------------------

class WorkerProcess:
    """`python -m tests.failures.worker_process` with the test environment; its log kept for failures."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> "WorkerProcess":
        log = self.log_path.open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.failures.worker_process", cwd=str(ROOT), env=self.env,
            stdout=log, stderr=log,
        )
        log.close()
        return self

    async def kill(self) -> int:
        """SIGKILL: no shutdown hook, no finally block, sockets closed by the kernel."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        return await self.proc.wait()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout=10)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


# --- MariaDB from outside the app --------------------------------------------------------------------

async def connect(autocommit: bool = True) -> aiomysql.Connection:
    return await aiomysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, password=MYSQL_PASSWORD,
                                  db=TEST_DATABASE, autocommit=autocommit)


async def query(sql: str, *args: Any) -> list[tuple]:
    """A fresh connection each time, so every read sees the latest commits."""
    conn = await connect()
    try:
        async with conn.cursor() as cur:
            await cur.execute(sql, args or None)
            return list(await cur.fetchall())
    finally:
        conn.close()


class RowLock:
    """Hold `SELECT ... FOR UPDATE` on rows from a connection of our own, as a slow transaction would."""

    def __init__(self, table: str, where: str, *args: Any) -> None:
        self.sql = f"SELECT * FROM `{table}` WHERE {where} FOR UPDATE"
        self.args = args
        self.conn: aiomysql.Connection | None = None
        self.thread_id = 0

    async def __aenter__(self) -> "RowLock":
        self.conn = await connect(autocommit=False)
        async with self.conn.cursor() as cur:
            await cur.execute("SELECT CONNECTION_ID()")
            (self.thread_id,) = await cur.fetchone()
            await cur.execute(self.sql, self.args)
            assert await cur.fetchall(), f"nothing to lock: {self.sql} {self.args}"
        return self

    async def release(self) -> None:
        if self.conn is not None:
            await self.conn.rollback()
            self.conn.close()
            self.conn = None

    async def __aexit__(self, *exc: object) -> None:
        await self.release()


async def blocked_statements(pattern: str, exclude: int = 0) -> list[tuple[int, str]]:
    """(thread id, statement) of connections to the test database running a statement LIKE `pattern`.

    PROCESSLIST rather than INNODB_TRX: MariaDB truncates its INNODB_TRX cache when another database
    on the server holds many locks (a benchmark running beside the tests), and rows go missing.
    """
    rows = await query(
        "SELECT ID, INFO FROM information_schema.PROCESSLIST "
        "WHERE DB = %s AND ID <> %s AND COMMAND = 'Query' AND INFO LIKE %s",
        TEST_DATABASE, exclude, pattern,
    )
    return [(int(a), str(b)) for a, b in rows]


async def connection_gone(thread_id: int) -> bool:
    return not await query("SELECT ID FROM information_schema.PROCESSLIST WHERE ID = %s", thread_id)


async def kill_connection(thread_id: int) -> None:
    conn = await connect()
    try:
        async with conn.cursor() as cur:
            await cur.execute(f"KILL CONNECTION {int(thread_id)}")
    finally:
        conn.close()


# --- Redis -------------------------------------------------------------------------------------------

async def jobs_in_progress(redis) -> list[bytes]:
    """arq's in-progress markers in this run's Redis database (one per job a worker has started)."""
    return [k async for k in redis.scan_iter(match="arq:in-progress:*")]


class RedisCut:
    """A TCP proxy in front of Redis that can drop every connection and refuse new ones (a partition)."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.server: asyncio.base_events.Server | None = None
        self.port = 0
        self.cut = False
        self._pipes: set[asyncio.StreamWriter] = set()

    @property
    def url_base(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    async def start(self) -> "RedisCut":
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self._pipes.update({writer, up_writer})

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()
                self._pipes.discard(dst)

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def partition(self) -> None:
        self.cut = True
        for writer in list(self._pipes):
            writer.close()
        self._pipes.clear()

    def heal(self) -> None:
        self.cut = False

    async def stop(self) -> None:
        self.partition()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
