"""kernel.together: asks of one pass served by one call, each with its own answer, never an answer that
predates the ask."""

from __future__ import annotations

import asyncio

import pytest

from kernel.together import Together


class Served:
    """A `serve` that records each call's asks, optionally waiting on a gate or failing."""

    def __init__(self, fail: Exception | None = None, short: bool = False) -> None:
        self.calls: list[list[int]] = []
        self.gate: asyncio.Event | None = None
        self.fail, self.short = fail, short

    async def __call__(self, asks: list[int]) -> list[int]:
        self.calls.append(list(asks))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        answers = [ask * 10 for ask in asks]
        return answers[:-1] if self.short else answers


async def until(condition) -> None:
    """Let the event loop run a few passes until `condition()` holds."""
    for _ in range(20):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


async def test_asks_of_one_pass_share_one_call_and_each_gets_its_own_answer():
    served = Served()
    together = Together(served)
    answers = await asyncio.gather(*[together.ask(i) for i in (3, 1, 2, 3)])
    assert answers == [30, 10, 20, 30]
    assert served.calls == [[3, 1, 2, 3]] and together.calls == 1


async def test_an_ask_made_while_a_call_is_out_is_served_by_a_later_call():
    served = Served()
    served.gate = asyncio.Event()
    together = Together(served)
    first = asyncio.create_task(together.ask(1))
    await until(lambda: served.calls == [[1]])  # the call for 1 is out, waiting at the gate
    second = asyncio.create_task(together.ask(2))
    # 2 was asked after the first call went out: it is not answered by it, but by a call of its own.
    await until(lambda: served.calls == [[1], [2]])
    served.gate.set()
    assert await first == 10 and await second == 20


async def test_most_asks_per_call():
    served = Served()
    together = Together(served, most=2)
    assert await asyncio.gather(*[together.ask(i) for i in range(5)]) == [0, 10, 20, 30, 40]
    assert served.calls == [[0, 1], [2, 3], [4]]


async def test_a_failed_call_fails_each_of_its_asks():
    together = Together(Served(fail=ConnectionError("gone")))
    results = await asyncio.gather(*[together.ask(i) for i in range(3)], return_exceptions=True)
    assert [type(r) for r in results] == [ConnectionError] * 3


async def test_a_call_answering_too_few_fails_its_asks_instead_of_leaving_them_waiting():
    together = Together(Served(short=True))
    results = await asyncio.wait_for(asyncio.gather(*[together.ask(i) for i in range(3)], return_exceptions=True), 5)
    assert all(isinstance(r, RuntimeError) for r in results)


async def test_a_cancelled_caller_leaves_the_others_their_answers():
    served = Served()
    served.gate = asyncio.Event()
    together = Together(served)
    tasks = [asyncio.create_task(together.ask(i)) for i in range(3)]
    await asyncio.sleep(0)
    tasks[1].cancel()
    served.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[0] == 0 and isinstance(results[1], asyncio.CancelledError) and results[2] == 20
    assert served.calls == [[0, 1, 2]]


async def test_a_call_cut_short_by_shutdown_cancels_its_callers():
    served = Served()
    served.gate = asyncio.Event()
    together = Together(served)
    caller = asyncio.create_task(together.ask(1))
    await until(lambda: served.calls == [[1]])
    [call] = [t for t in asyncio.all_tasks() if t.get_coro().__qualname__ == "Together._call"]
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller


async def test_a_call_in_flight_is_not_lost_to_the_garbage_collector():
    """A call waiting on a future that only the call leads to (a cycle): the event loop holds tasks weakly, so
    without a reference of Together's own the collector destroyed it and its callers got CancelledError."""
    import gc
    import weakref

    waiting_on: list[weakref.ref] = []

    async def serve(asks: list[int]) -> list[int]:
        waiting = asyncio.get_running_loop().create_future()
        waiting_on.append(weakref.ref(waiting))
        await waiting
        return [ask * 10 for ask in asks]

    together = Together(serve)
    caller = asyncio.create_task(together.ask(1))
    await until(lambda: waiting_on)
    gc.collect()
    waiting = waiting_on[0]()
    assert waiting is not None, "the call was collected while it waited"
    waiting.set_result(None)
    assert await caller == 10


async def test_each_caller_of_a_failed_call_raises_its_own_exception():
    """One exception object raised by many callers would carry each one's traceback into the others' logs."""
    together = Together(Served(fail=ConnectionError("gone")))
    results = await asyncio.gather(*[together.ask(i) for i in range(3)], return_exceptions=True)
    assert all(isinstance(r, ConnectionError) and r.args == ("gone",) for r in results)
    assert len({id(r) for r in results}) == 3
