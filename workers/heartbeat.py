"""Worker heartbeats: each arq worker's own health key in Redis, and how readiness reads them.

arq refreshes a worker's `health_check_key` from inside its poll loop (every `HEARTBEAT_SECONDS`, kept
for one second more), so the key lives only while that worker really polls the queue: a worker whose
loop died (Redis lost, process gone) stops beating even if other tasks of its process still run.
Every worker, embedded or a separate `arq` process, gets a key of its own under one prefix per queue.
"""

from __future__ import annotations

import os
import secrets
import socket
from typing import Any

HEARTBEAT_SECONDS = 5
# arq writes the key with this time to live (its interval plus one second).
_KEY_TTL_SECONDS = HEARTBEAT_SECONDS + 1


def heartbeat_prefix(queue_name: str) -> str:
    return f"{queue_name}:worker-heartbeat:"


def new_heartbeat_key(queue_name: str) -> str:
    """A key naming this worker: host, process and a random part (an embedded worker restarted in the
    same process is a new worker)."""
    return f"{heartbeat_prefix(queue_name)}{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


async def read_heartbeats(redis: Any, queue_name: str) -> dict[str, float]:
    """Live workers of the queue and the age in seconds of each one's last heartbeat."""
    prefix = heartbeat_prefix(queue_name)
    ages: dict[str, float] = {}
    async for raw in redis.scan_iter(match=f"{prefix}*", count=500):
        key = raw.decode() if isinstance(raw, bytes) else str(raw)
        ttl_ms = await redis.pttl(key)
        if ttl_ms is None or ttl_ms < 0:
            continue
        ages[key.removeprefix(prefix)] = round(max(0.0, _KEY_TTL_SECONDS - ttl_ms / 1000), 1)
    return ages
