"""A real `python -m api serve` process on the test database, for tests that need a socket."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@asynccontextmanager
async def live_server_url(**env_overrides: str) -> AsyncIterator[str]:
    port = free_port()
    env = {**os.environ, "EMBEDDED_WORKER": "0", **env_overrides}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "api", "serve", "--no-demo", "--port", str(port),
        cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base) as http:
            for _ in range(300):
                if process.returncode is not None:
                    err = await process.stderr.read() if process.stderr else b""
                    raise RuntimeError("server exited:\n" + err.decode()[-3000:])
                try:
                    if (await http.get("/health/live")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError("server did not start within 30 s")
        yield base
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(process.wait(), timeout=15)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()
