"""A real `python -m api serve` process on the test database, for tests that need a socket."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bench.harness import running_server


@asynccontextmanager
async def live_server_url(**env_overrides: str) -> AsyncIterator[str]:
    async with running_server({**os.environ, "EMBEDDED_WORKER": "0", **env_overrides}) as base:
        yield base
