"""A short, stated-time cache in each process for answers that are the same for every customer (a day's
slots, the mall shelf, a campaign page). A customer's own state never goes through it.

Entries live `PUBLIC_CACHE_SECONDS` (default 2 s; 0 turns caching off; read and judged at start with the
kernel's other settings): a seat booked, an item redeemed or a price changed shows up in these lists at most
that late, while every write (booking, redemption, join) still decides on the rows themselves. Time-dependent
filtering (minimum notice, an item's availability window) is applied by the caller to the cached value on every
request, so it is exact.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from kernel.settings import get_settings

T = TypeVar("T")


class SharedAnswerCache(Generic[T]):
    """Values by key for a stated time; concurrent misses for one key load it once."""

    def __init__(self, name: str, *, max_entries: int = 2048) -> None:
        self.name = name
        self.max_entries = max_entries
        # Read from the settings at each use, not here: caches are made as their modules are imported, before the
        # start has read the settings and listed every bad value together (kernel.settings.PUBLIC_CACHE_SECONDS).
        # A test sets its own lifetime on one cache.
        self._seconds: float | None = None
        self._entries: dict[Hashable, tuple[float, T]] = {}
        self._loading: dict[Hashable, "asyncio.Future[T]"] = {}

    @property
    def seconds(self) -> float:
        """How long an entry lives: PUBLIC_CACHE_SECONDS (tests set it on a cache to switch that cache on)."""
        return get_settings().app.public_cache_seconds if self._seconds is None else self._seconds

    @seconds.setter
    def seconds(self, value: float) -> None:
        self._seconds = value

    async def get(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        if self.seconds <= 0:
            return await load()
        now = time.monotonic()
        found = self._entries.get(key)
        if found is not None and found[0] > now:
            return found[1]
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            value = await load()
        except BaseException as exc:
            # Errors (not found, database down) are not cached; waiters see the same error.
            future.set_exception(exc)
            future.exception()  # marked retrieved: no "never retrieved" warning when nobody waited
            raise
        finally:
            self._loading.pop(key, None)
        future.set_result(value)
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key] = (time.monotonic() + self.seconds, value)
        return value

    def clear(self) -> None:
        self._entries.clear()



