"""Asks that arrive in the same pass of the event loop, served together by one call: `Together`.

Under load a process handles many requests in each pass of its event loop. When several of them need the
same kind of round trip (a rate-limit count in Redis, a customer's own points in the database), paying for
one each costs the server about as much CPU as the rest of the request: the client's command, the socket
write and the wake-up that reads the answer (docs/benchmarks.md, round 8). `Together(serve).ask(x)` waits
until the callbacks already due in this pass have run; the asks made meanwhile are then served by one call of
`serve([x, y, ...])`, and each caller gets its own answer.

What it keeps:
- Every ask is served by a call made after it was asked: an answer never predates its request, so this is
  not a cache, and a customer reads their own writes (a write answered before the read was sent is seen).
- `serve` answers each ask as a call for it alone would have, one answer per ask, in order. Where order
  matters it keeps it (Redis runs a script's INCRs in the order of its keys).
- A call that fails fails each of its asks with that exception, for each caller to handle as its own; a
  caller cancelled meanwhile (its client hung up) leaves the others their answers; a call cut short by the
  server's shutdown cancels its callers.
- At most `most` asks share a call; more make further calls, each on its own task (a pooled connection each).

Without load each ask is served alone, one pass later: the price is a callback, a future and a task, a few
microseconds.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from tortoise.backends.base.client import BaseDBAsyncClient, TransactionalDBClient

A = TypeVar("A")
R = TypeVar("R")


def reads_may_be_shared(conn: BaseDBAsyncClient) -> bool:
    """Whether a read through `conn` may share its statement with other customers' reads: the pool on
    MySQL/MariaDB. Never inside a transaction (its snapshot and locks are its own), never on SQLite (the embedded
    stack reads through the ORM)."""
    return conn.capabilities.dialect == "mysql" and not isinstance(conn, TransactionalDBClient)


class Together(Generic[A, R]):
    def __init__(self, serve: Callable[[list[A]], Awaitable[Sequence[R]]], *, most: int = 200) -> None:
        self._serve = serve
        self._most = most
        self._loop: asyncio.AbstractEventLoop | None = None
        self._asks: list[A] = []
        self._answers: list[asyncio.Future[R]] = []
        # The calls in flight. The event loop keeps only a weak reference to a task: a call waiting on a future
        # that only the call itself leads to could be collected as garbage mid-way, its callers cancelled (seen
        # under load: "Task was destroyed but it is pending!" and a 500).
        self._in_flight: set[asyncio.Task[None]] = set()
        self.calls = 0  # calls of `serve` made (the tests read it to see asks share them)

    async def ask(self, ask: A) -> R:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # Another event loop (each test has its own): whatever waited on the last one was answered or is
            # gone with it.
            self._loop, self._asks, self._answers, self._in_flight = loop, [], [], set()
        answer: asyncio.Future[R] = loop.create_future()
        if not self._asks:
            loop.call_soon(self._send)
        self._asks.append(ask)
        self._answers.append(answer)
        if len(self._asks) >= self._most:
            self._send()
        return await answer

    def _send(self) -> None:
        if not self._asks:  # sent already, when it reached `most`
            return
        asks, answers = self._asks, self._answers
        self._asks, self._answers = [], []
        self.calls += 1
        # A task of its own: the call finishes for every ask even if the caller that started it is cancelled.
        call = asyncio.get_running_loop().create_task(self._call(asks, answers))
        self._in_flight.add(call)
        call.add_done_callback(self._in_flight.discard)

    async def _call(self, asks: list[A], answers: list[asyncio.Future[R]]) -> None:
        try:
            results = await self._serve(asks)
            if len(results) != len(asks):
                raise RuntimeError(f"served {len(results)} answers for {len(asks)} asks")
        except Exception as exc:  # noqa: BLE001 -- each caller handles the failure as its own
            for answer in answers:
                if not answer.done():
                    answer.set_exception(_own_copy(exc))
            return
        except BaseException:  # cancelled: the server is shutting down
            for answer in answers:
                answer.cancel()
            raise
        for answer, result in zip(answers, results):
            if not answer.done():  # a cancelled caller's answer is dropped
                answer.set_result(result)


def _own_copy(exc: Exception) -> Exception:
    """The failure for one caller: each raises its own exception object, so one caller's traceback and context
    never show up in another's log (raising an exception object extends its `__traceback__`)."""
    try:
        mine = copy.copy(exc)
    except Exception:  # noqa: BLE001 -- an exception that cannot be copied is shared, as it was
        return exc
    mine.__cause__ = exc.__cause__
    mine.__traceback__ = exc.__traceback__
    return mine
