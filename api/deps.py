"""Dependencies shared by controllers: the handler's transaction (`db`), the app-wide clients kept in
app.state, and paging."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Concatenate, ParamSpec, TypeVar

from arq.connections import ArqRedis
from litestar.datastructures import State
from litestar.params import Parameter

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient

from kernel.db import run_in_transaction
from kernel.wechat.miniprogram import MiniProgram

P = ParamSpec("P")
T = TypeVar("T")


class Db:
    """The one way a handler reaches the database: `await db.run(work, *args)`.

    `run` calls `work(conn, *args, **kwargs)` in one transaction and commits it; when InnoDB picks it
    as a deadlock victim the whole transaction was rolled back, so it runs again (the work touches
    only the database, which makes running it again safe). Network calls (WeChat) go before or after,
    never inside. `read` is for hot read-only routes that need no snapshot: plain autocommit reads,
    no BEGIN/COMMIT round trips.
    """

    async def run(
        self, work: Callable[Concatenate[BaseDBAsyncClient, P], Awaitable[T]], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        return await run_in_transaction(lambda conn: work(conn, *args, **kwargs))

    async def read(
        self, work: Callable[Concatenate[BaseDBAsyncClient, P], Awaitable[T]], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        return await work(connections.get("default"), *args, **kwargs)


_DB = Db()


def provide_db() -> Db:
    """The `db` dependency of every route (registered once, on the app)."""
    return _DB


def miniprogram(state: State) -> MiniProgram:
    return state.miniprogram


def redis(state: State) -> ArqRedis:
    return state.redis


Limit = Annotated[int, Parameter(ge=1, le=200, default=20, description="Page size")]
Offset = Annotated[int, Parameter(ge=0, le=1_000_000, default=0, description="Rows to skip")]
