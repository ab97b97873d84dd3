"""A real `python -m api serve` process on the test database, for tests that need a socket."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bench.harness import running_server
from tests.failures.support import SERVER_START_SECONDS


@asynccontextmanager
async def live_server_url(**env_overrides: str) -> AsyncIterator[str]:
    # A readiness wait, not a timing claim: a loaded machine migrates and starts slowly.
    async with running_server({**os.environ, "EMBEDDED_WORKER": "0", **env_overrides},
                              start_seconds=SERVER_START_SECONDS) as base:
        yield base
