"""Batched redemption of a hot item against MariaDB: a crowd beyond stock, refusals inside a batch, the same
Idempotency-Key twice in one batch, a crash between a batch's statements, stock taken under a batch.

The requests of each test are started together (`asyncio.gather`), so they queue while the first batch is
in flight and are served together; the batch-size histogram shows that batches really held more than one request.
"""

from __future__ import annotations

import asyncio
import secrets

import aiomysql
from prometheus_client import REGISTRY

from kernel.errors import DomainError
from points_mall import redemption_batches
from points_mall.errors import InsufficientPoints, LimitReached, OutOfStock, TierRequired
from points_mall.models import MallItem, MallRedemption, PointsLedgerEntry, Voucher
from points_mall.redemption_batches import Redeemed, redeem
from tests import conftest
from tests.failures.support import RowLock, blocked_statements, connection_gone, kill_connection, wait_for
from tests.points_mall.factories import assert_ledger_consistent, funded_customer, make_item


def batches_so_far() -> tuple[float, float]:
    """(requests, batches) the batch-size histogram of /metrics has counted in this process."""
    sample = REGISTRY.get_sample_value
    return sample("clinic_mall_redemption_batch_size_sum") or 0, sample("clinic_mall_redemption_batch_size_count") or 0


def key() -> str:
    return "k-" + secrets.token_hex(8)


async def ask(customer, item, *, quantity: int = 1, idempotency_key: str | None = None) -> Redeemed | DomainError:
    try:
        return await redeem(customer_id=customer.id, item_id=item.id, quantity=quantity,
                            idempotency_key=idempotency_key or key())
    except DomainError as exc:
        return exc


async def assert_item_matches_redemptions(item_id: int) -> int:
    """The stock reserved equals the units the item's redemptions hold; returns it."""
    item = await MallItem.get(id=item_id)
    held = sum(r.quantity - r.cancelled_quantity for r in await MallRedemption.filter(item_id=item_id))
    assert item.stock_reserved == held <= item.stock_total
    return held


async def test_crowd_beyond_stock_never_oversells():
    before = batches_so_far()
    item = await make_item(stock_total=7, points_price=100)
    customers = [await funded_customer(300) for _ in range(120)]
    outcomes = await asyncio.gather(*[ask(c, item) for c in customers])
    won = [o for o in outcomes if isinstance(o, Redeemed)]
    assert len(won) == 7 and all(o.created and len(o.vouchers) == 1 for o in won)
    assert all(isinstance(o, OutOfStock) for o in outcomes if not isinstance(o, Redeemed))
    assert await assert_item_matches_redemptions(item.id) == 7
    winners = {o.redemption.customer_id for o in won}
    for c in customers:
        assert await assert_ledger_consistent(c.id) == (200 if c.id in winners else 300)
    requests, batches = (now - then for now, then in zip(batches_so_far(), before))
    assert requests == 120 and batches < 120  # requests shared transactions


async def test_refusals_inside_a_batch_are_each_requests_own():
    # Stock 5, limit 3 per customer. In arrival order: 2 units (fit), a customer short of points, 3 units
    # from a customer both over the limit and short of points (the limit is what they get alone too),
    # 2 units (fit), 2 units (only 1 left: out of stock), 1 unit (fits: the last one).
    item = await make_item(stock_total=5, points_price=100, limit_per_customer=3)
    first, second, third, last = [await funded_customer(1000) for _ in range(4)]
    poor = await funded_customer(50)
    greedy = await funded_customer(150)
    outcomes = await asyncio.gather(
        ask(first, item, quantity=2), ask(poor, item), ask(greedy, item, quantity=4),
        ask(second, item, quantity=2), ask(third, item, quantity=2), ask(last, item),
    )
    assert isinstance(outcomes[0], Redeemed) and outcomes[0].created and len(outcomes[0].vouchers) == 2
    assert isinstance(outcomes[1], InsufficientPoints) and outcomes[1].code == "insufficient_points"
    assert isinstance(outcomes[2], LimitReached)
    assert isinstance(outcomes[3], Redeemed) and len(outcomes[3].vouchers) == 2
    assert isinstance(outcomes[4], OutOfStock)
    assert isinstance(outcomes[5], Redeemed)
    assert await assert_item_matches_redemptions(item.id) == 5
    for customer, balance in ((first, 800), (poor, 50), (greedy, 150), (second, 800), (third, 1000), (last, 900)):
        assert await assert_ledger_consistent(customer.id) == balance


async def test_tier_refusal_for_every_request_of_a_batch():
    gold_only = await make_item(stock_total=5, points_price=10, min_tier_level=99)
    outcomes = await asyncio.gather(*[ask(await funded_customer(100), gold_only) for _ in range(3)])
    assert all(isinstance(o, TierRequired) for o in outcomes)
    assert (await MallItem.get(id=gold_only.id)).stock_reserved == 0


async def test_same_key_twice_in_one_batch_is_one_redemption():
    item = await make_item(stock_total=10, points_price=100)
    twice = await funded_customer(1000)
    others = [await funded_customer(1000) for _ in range(3)]
    k = key()
    outcomes = await asyncio.gather(
        ask(others[0], item), ask(twice, item, idempotency_key=k), ask(others[1], item),
        ask(twice, item, idempotency_key=k), ask(others[2], item), ask(twice, item, idempotency_key=k),
    )
    mine = [outcomes[1], outcomes[3], outcomes[5]]
    assert all(isinstance(o, Redeemed) for o in outcomes)
    # Which of the three reaches the queue first is the scheduler's choice; exactly one creates the redemption.
    assert sorted(o.created for o in mine) == [False, False, True]
    assert len({o.redemption.id for o in mine}) == 1
    assert len({tuple(v.code for v in o.vouchers) for o in mine}) == 1
    assert await MallRedemption.filter(customer_id=twice.id).count() == 1
    assert await assert_ledger_consistent(twice.id) == 900
    # The same key for another quantity is refused, as on the single path.
    reused = await ask(twice, item, quantity=2, idempotency_key=k)
    assert isinstance(reused, DomainError) and reused.code == "idempotency_key_reused"
    assert await assert_item_matches_redemptions(item.id) == 4


async def test_a_failure_between_statements_applies_nothing_and_fails_only_its_request(monkeypatch):
    item = await make_item(stock_total=10, points_price=100)
    customers = [await funded_customer(1000) for _ in range(5)]
    poisoned = customers[2]
    real_answers, real_vouchers_of = redemption_batches._answers, redemption_batches._vouchers_of

    def failing_answers(written, vouchers, voucher_ids):
        # After every statement of the batch was answered (redemptions, debits, lots, vouchers of all five,
        # the stock), before the commit: the whole batch must roll back.
        if any(v["customer_id"] == poisoned.id for v in vouchers):
            raise RuntimeError("a bug that only this request's data triggers")
        return real_answers(written, vouchers, voucher_ids)

    async def failing_vouchers_of(conn, redemption_ids):
        # Run alone (the single path's writes done, reading its vouchers), the poisoned request fails again.
        if await MallRedemption.filter(id__in=redemption_ids, customer_id=poisoned.id).using_db(conn).exists():
            raise RuntimeError("a bug that only this request's data triggers")
        return await real_vouchers_of(conn, redemption_ids)

    monkeypatch.setattr(redemption_batches, "_answers", failing_answers)
    monkeypatch.setattr(redemption_batches, "_vouchers_of", failing_vouchers_of)
    keys = [key() for _ in customers]
    outcomes = await asyncio.gather(*[
        redeem(customer_id=c.id, item_id=item.id, quantity=1, idempotency_key=k) for c, k in zip(customers, keys)
    ], return_exceptions=True)
    assert isinstance(outcomes[2], RuntimeError)
    assert all(isinstance(o, Redeemed) and o.created for i, o in enumerate(outcomes) if i != 2)
    assert await MallRedemption.filter(customer_id=poisoned.id).count() == 0
    assert not await Voucher.filter(customer_id=poisoned.id).exists()
    assert await PointsLedgerEntry.filter(customer_id=poisoned.id, kind="redemption").count() == 0
    assert await assert_ledger_consistent(poisoned.id) == 1000
    assert await assert_item_matches_redemptions(item.id) == 4
    for c in customers:
        if c is not poisoned:
            assert await assert_ledger_consistent(c.id) == 900

    monkeypatch.setattr(redemption_batches, "_answers", real_answers)
    monkeypatch.setattr(redemption_batches, "_vouchers_of", real_vouchers_of)
    retried = await asyncio.gather(*[
        redeem(customer_id=c.id, item_id=item.id, quantity=1, idempotency_key=k) for c, k in zip(customers, keys)
    ])
    assert [o.created for o in retried] == [False, False, True, False, False]
    assert [o.redemption.id for i, o in enumerate(retried) if i != 2] == [
        o.redemption.id for i, o in enumerate(outcomes) if i != 2]
    assert await assert_ledger_consistent(poisoned.id) == 900
    assert await assert_item_matches_redemptions(item.id) == 5


async def test_a_statement_refused_in_the_middle_of_the_batch_applies_nothing_and_each_runs_alone(monkeypatch):
    # The database refuses the batch's voucher INSERT (a code that exists already), after the redemptions,
    # ledger entries, debits and lot uses of all five went before it in the same round trip: none of them
    # may stay, and each request, run again alone, is applied once.
    item = await make_item(stock_total=10, points_price=100)
    customers = [await funded_customer(1000) for _ in range(5)]
    taken_code = (await redeem(customer_id=(await funded_customer(1000)).id, item_id=item.id, quantity=1,
                               idempotency_key=key())).vouchers[0].code
    codes = iter([taken_code])
    real_code = redemption_batches.new_voucher_code
    monkeypatch.setattr(redemption_batches, "new_voucher_code", lambda: next(codes, None) or real_code())
    outcomes = await asyncio.gather(*[
        redeem(customer_id=c.id, item_id=item.id, quantity=1, idempotency_key=key()) for c in customers])
    assert all(isinstance(o, Redeemed) and o.created for o in outcomes)
    assert len({o.redemption.id for o in outcomes}) == 5
    assert all(len(o.vouchers) == 1 and o.vouchers[0].code != taken_code for o in outcomes)
    for c in customers:
        assert await assert_ledger_consistent(c.id) == 900
        assert await MallRedemption.filter(customer_id=c.id).count() == 1
    assert await assert_item_matches_redemptions(item.id) == 6


async def test_stock_taken_by_another_process_under_a_batch(monkeypatch):
    # Another worker takes all but one unit after this batch read the item and before its stock UPDATE:
    # the batch runs again with the item locked; one request wins, the others are out of stock.
    item = await make_item(stock_total=10, points_price=100)
    customers = [await funded_customer(1000) for _ in range(4)]
    real_holdings = redemption_batches._holdings
    taken = []

    async def holdings_then_another_worker(conn, item_now, customer_ids):
        if not taken:
            taken.append(True)
            # Its own connection, as another server process has (not this task's transaction).
            other = await aiomysql.connect(host=conftest.MYSQL_HOST, port=conftest.MYSQL_PORT,
                                           user=conftest.MYSQL_USER, password=conftest.MYSQL_PASSWORD,
                                           db=conftest.TEST_DATABASE, autocommit=True)
            try:
                async with other.cursor() as cur:
                    await cur.execute("UPDATE mall_item SET stock_reserved = 9 WHERE id = %s", (item.id,))
            finally:
                other.close()
        return await real_holdings(conn, item_now, customer_ids)

    monkeypatch.setattr(redemption_batches, "_holdings", holdings_then_another_worker)
    outcomes = await asyncio.gather(*[ask(c, item) for c in customers])
    assert sum(isinstance(o, Redeemed) for o in outcomes) == 1
    assert sum(isinstance(o, OutOfStock) for o in outcomes) == 3
    assert (await MallItem.get(id=item.id)).stock_reserved == 10
    assert await MallRedemption.filter(item_id=item.id).count() == 1
    for c in customers:
        assert await assert_ledger_consistent(c.id) in (900, 1000)


async def test_connection_killed_under_a_batch_answers_every_waiter_and_retry_applies_once():
    # The batch's stock UPDATE waits on the item row (held by a slow transaction of our own); MariaDB kills
    # its connection there, after every request's redemption, debit and vouchers were written.
    item = await make_item(stock_total=10, points_price=100)
    customers = [await funded_customer(1000) for _ in range(4)]
    keys = [key() for _ in customers]

    def all_of_them():
        return [redeem(customer_id=c.id, item_id=item.id, quantity=1, idempotency_key=k)
                for c, k in zip(customers, keys)]

    async with RowLock("mall_item", "id = %s", item.id) as lock:
        waiting = asyncio.gather(*all_of_them(), return_exceptions=True)
        # The batch's statements go as one query (kernel.batch), the stock UPDATE last in it; the process
        # list shows the statement of the query running now.
        [(victim, _)] = await wait_for(
            lambda: blocked_statements("UPDATE mall_item SET stock_reserved%", exclude=lock.thread_id),
            what="the batch to wait on the item row")
        await kill_connection(victim)
        outcomes = await waiting
    await wait_for(lambda: connection_gone(victim), what="the killed connection to go")
    assert all(isinstance(o, Exception) and not isinstance(o, DomainError) for o in outcomes), outcomes
    assert await MallRedemption.filter(item_id=item.id).count() == 0
    assert (await MallItem.get(id=item.id)).stock_reserved == 0
    for c in customers:
        assert await assert_ledger_consistent(c.id) == 1000
        assert not await Voucher.filter(customer_id=c.id).exists()

    retried = await asyncio.gather(*all_of_them())
    assert all(o.created for o in retried)
    assert await assert_item_matches_redemptions(item.id) == 4


async def test_an_unknown_item_is_refused_for_each_request_of_the_batch():
    class Gone:
        id = 2**40  # no such item

    customers = [await funded_customer(500) for _ in range(3)]
    outcomes = await asyncio.gather(*[ask(c, Gone) for c in customers])
    assert all(isinstance(o, DomainError) and o.code == "item_not_found" for o in outcomes)
    for c in customers:
        assert await assert_ledger_consistent(c.id) == 500


async def test_a_cancelled_batch_answers_its_waiters_instead_of_leaving_them_hanging(monkeypatch):
    """Shutdown cancels a lane's server mid-transaction: its waiters learn it at once (nothing was applied:
    the transaction rolled back) instead of waiting forever on a future nobody will answer."""
    item = await make_item(stock_total=10, points_price=100)
    customers = [await funded_customer(1000) for _ in range(3)]
    started = asyncio.Event()

    async def stuck(work, **_):
        started.set()
        await asyncio.Event().wait()  # a statement that never returns

    monkeypatch.setattr(redemption_batches, "run_in_transaction", stuck)
    asks = [asyncio.ensure_future(redeem(customer_id=c.id, item_id=item.id, quantity=1, idempotency_key=key()))
            for c in customers]
    await asyncio.wait_for(started.wait(), 10)
    for server in list(redemption_batches._SERVERS):
        server.cancel()
    outcomes = await asyncio.wait_for(asyncio.gather(*asks, return_exceptions=True), 10)
    assert all(isinstance(o, asyncio.CancelledError) for o in outcomes), outcomes
    assert not await MallRedemption.filter(item_id=item.id).exists()


async def test_an_erased_customer_inside_a_batch_is_refused_alone(client):
    # The route's guard leaves the erasure check to the batch's customer lock: an erased customer in the
    # middle of a crowd is refused with account_erased and their neighbours are served.
    from kernel import clock
    from kernel.identity.models import Customer
    from tests.factories import customer_headers

    item = await make_item(stock_total=10, points_price=100)
    customers = [await funded_customer(300) for _ in range(5)]
    erased = customers[2]
    await Customer.filter(id=erased.id).update(deleted_at=clock.now())
    responses = await asyncio.gather(*[
        client.post("/app/mall/redemptions", json={"item_id": item.id, "quantity": 1},
                    headers={**customer_headers(c), "Idempotency-Key": key()})
        for c in customers
    ])
    assert [r.status_code for r in responses] == [201, 201, 401, 201, 201], [r.text for r in responses]
    assert responses[2].json()["code"] == "account_erased"
    assert not await MallRedemption.filter(customer_id=erased.id).exists()
    assert await assert_ledger_consistent(erased.id) == 300
    assert await assert_item_matches_redemptions(item.id) == 4


async def test_the_single_path_refuses_an_erased_customer_too():
    from kernel import clock
    from kernel.db import transaction
    from kernel.identity.models import Customer
    from kernel.identity.service import AccountErased
    from points_mall import mall

    item = await make_item(stock_total=10, points_price=100)
    customer = await funded_customer(300)
    await Customer.filter(id=customer.id).update(deleted_at=clock.now())
    try:
        async with transaction() as conn:
            await mall.redeem(conn, customer_id=customer.id, item_id=item.id, quantity=1, idempotency_key=key())
    except AccountErased:
        pass
    else:
        raise AssertionError("an erased customer redeemed")
    assert not await MallRedemption.filter(customer_id=customer.id).exists()


async def test_what_a_batch_answers_is_what_it_stored():
    # The batch writes by parameterised SQL and builds its answer from the values written: every field of
    # the redemption and of each voucher must be the row the database holds (as the ORM reads it).
    before = batches_so_far()
    item = await make_item(stock_total=20, points_price=100)
    customers = [await funded_customer(500) for _ in range(6)]
    outcomes = await asyncio.gather(*[ask(c, item, quantity=1 + i % 2) for i, c in enumerate(customers)])
    after = batches_so_far()
    assert after[0] - before[0] > after[1] - before[1]  # at least one batch held several requests
    for outcome in outcomes:
        assert isinstance(outcome, Redeemed) and outcome.created
        stored = await MallRedemption.get(id=outcome.redemption.id)
        for name in MallRedemption._meta.fields_db_projection:
            assert getattr(outcome.redemption, name) == getattr(stored, name), name
        rows = await Voucher.filter(source_type="mall_redemption", source_id=str(stored.id)).order_by("seq")
        assert len(rows) == len(outcome.vouchers) == stored.quantity
        for answered, row in zip(outcome.vouchers, rows):
            for name in Voucher._meta.fields_db_projection:
                assert getattr(answered, name) == getattr(row, name), name
            assert str(answered.valid_until) == str(row.valid_until)  # the same instant, written the same way


def _same_fields(fast, general) -> None:
    # Every field, value and type: the batch reads each row as one JSON column (kernel.batch.packed_model).
    for name in type(general)._meta.fields_db_projection:
        assert getattr(fast, name) == getattr(general, name), name
        assert type(getattr(fast, name)) is type(getattr(general, name)), name


async def test_the_batched_reads_are_what_the_orm_reads():
    # The batch's reads go as one round trip of SQL on MariaDB (`_read_in_one_round_trip`): every field of the
    # accounts, lots, earlier redemptions and item it hydrates must be what the ORM path reads, for customers
    # with several lots (one expired), an earlier redemption, an erased customer and one without an account.
    from datetime import timedelta

    from kernel import clock
    from kernel.db import transaction
    from kernel.identity.models import Customer
    from points_mall.models import PointsLot
    from tests.factories import make_customer
    from tests.points_mall.factories import give_points

    item = await make_item(stock_total=20, points_price=100, branch_ids=[3, 1], limit_per_customer=5)
    rich, repeat, erased = [await funded_customer(500) for _ in range(3)]
    await give_points(rich.id, 40, "fund:" + secrets.token_hex(6))
    await PointsLot.filter(customer_id=rich.id, points=40).update(expires_at=clock.now() - timedelta(days=1))
    done_key = key()
    assert isinstance(await redeem(customer_id=repeat.id, item_id=item.id, quantity=1, idempotency_key=done_key),
                      Redeemed)
    await Customer.filter(id=erased.id).update(deleted_at=clock.now())
    no_account = await make_customer()
    asks = [redemption_batches._Ask(c.id, item.id, 1, k, None)  # type: ignore[arg-type]
            for c, k in ((rich, key()), (repeat, done_key), (erased, key()))]
    now = clock.now()
    for item_locked in (False, True):
        async with transaction() as conn:
            fast = await redemption_batches._read_in_one_round_trip(conn, item.id, asks, now, item_locked)
            slow = await redemption_batches._read_one_by_one(conn, item.id, asks, now, item_locked)
        assert fast[0] == slow[0] == {rich.id, repeat.id}
        assert fast[1].keys() == slow[1].keys() == {rich.id, repeat.id}
        for customer_id, points in fast[1].items():
            general = slow[1][customer_id]
            _same_fields(points.account, general.account)
            assert [lot.id for lot in points.lots] == [lot.id for lot in general.lots]
            for lot, general_lot in zip(points.lots, general.lots):
                _same_fields(lot, general_lot)
        assert len(fast[1][rich.id].lots) == 1  # the expired lot is not spendable
        assert [r.id for r in fast[2]] == [r.id for r in slow[2]] and len(fast[2]) == 1
        _same_fields(fast[2][0], slow[2][0])
        _same_fields(fast[3], slow[3])
    # A customer without an account yet: the batch's points come from the general read, which creates it.
    async with transaction() as conn:
        found, points, _, _ = await redemption_batches._read_in_one_round_trip(
            conn, item.id, [redemption_batches._Ask(no_account.id, item.id, 1, key(), None)],  # type: ignore[arg-type]
            now, False)
    assert found == {no_account.id} and points[no_account.id].account.balance == 0
