"""A short, stated-time cache in each process for answers that are the same for every customer (a day's
slots, the mall shelf, a campaign page). A customer's own state never goes through it.

Entries live `PUBLIC_CACHE_SECONDS` (default 2 s; 0 turns caching off): a seat booked, an item redeemed
or a price changed shows up in these lists at most that late, while every write (booking, redemption,
join) still decides on the rows themselves. Time-dependent filtering (minimum notice, an item's
availability window) is applied by the caller to the cached value on every request, so it is exact.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from kernel.settings import env_float

T = TypeVar("T")


# 0 turns the caches off. `inf` (or a huge number) kept the first answer for the life of the process: a slot
# staff closed, an item sold out or a price changed never showed until a restart. Past a minute customers
# pick seats and items that are long gone, and under a crowd a few seconds already serve almost every read.
# Read as each cache is made, when the app's modules are imported at start: outside it, the start stops
# naming the variable and the range.
PUBLIC_CACHE_SECONDS = (0.0, 60.0)


def _seconds() -> float:
    return env_float("PUBLIC_CACHE_SECONDS", 2.0, within=PUBLIC_CACHE_SECONDS)


class SharedAnswerCache(Generic[T]):
    """Values by key for a stated time; concurrent misses for one key load it once."""

    def __init__(self, name: str, *, max_entries: int = 2048) -> None:
        self.name = name
        self.max_entries = max_entries
        self.seconds = _seconds()
        self._entries: dict[Hashable, tuple[float, T]] = {}
        self._loading: dict[Hashable, "asyncio.Future[T]"] = {}

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



