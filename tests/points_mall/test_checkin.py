"""Daily check-in: one per clinic-local day under 50 concurrent taps, streaks, cycle wrap, reset, make-up limits."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta, timezone

import pytest

from kernel import clock
from kernel.db import run_in_transaction, transaction
from points_mall.models import CheckIn, PointsAccount, PointsLedgerEntry, PointsLot
from points_mall.rules import get_rules, update_rules
from tests.factories import customer_headers, make_customer
from tests.points_mall.factories import assert_ledger_consistent

SHANGHAI = timezone(timedelta(hours=8))


def at_local(day: date, hour: int = 9) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=SHANGHAI)


@pytest.fixture
async def checkin_rules():
    """A known reward table for these tests (5 a day, a 7-day cycle, +10 on day 3, +30 on day 7)."""
    async with transaction() as conn:
        before = await get_rules(conn)
        saved = {f: getattr(before, f) for f in ("checkin_base_points", "checkin_cycle_days", "checkin_bonus",
                                                   "makeup_enabled", "makeup_cost_points", "makeup_per_month")}
        await update_rules(conn, None, {"checkin_base_points": 5, "checkin_cycle_days": 7,
                                        "checkin_bonus": {"3": 10, "7": 30}, "makeup_enabled": False,
                                        "makeup_cost_points": 20, "makeup_per_month": 2})
    yield
    async with transaction() as conn:
        await update_rules(conn, None, saved)


async def tap(client, customer):
    return await client.post("/app/check-ins", headers=customer_headers(customer))


async def test_fifty_concurrent_taps_give_one_entry(client, checkin_rules):
    customer = await make_customer()
    responses = await asyncio.gather(*[tap(client, customer) for _ in range(50)])
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 1 and statuses.count(409) == 49, statuses
    assert all(r.json()["code"] == "already_checked_in" for r in responses if r.status_code == 409)
    assert await CheckIn.filter(customer_id=customer.id).count() == 1
    entries = await PointsLedgerEntry.filter(customer_id=customer.id)
    assert len(entries) == 1 and entries[0].delta == 5
    assert await assert_ledger_consistent(customer.id) == 5


async def test_local_day_is_shanghai_not_utc(client, checkin_rules):
    customer = await make_customer()
    # 23:30 UTC on 1 March is 07:30 on 2 March in Shanghai; 15:59 UTC on 2 March is still 2 March there.
    clock.set_now(datetime(2026, 3, 1, 23, 30, tzinfo=timezone.utc))
    assert (await tap(client, customer)).json()["date"] == "2026-03-02"
    clock.set_now(datetime(2026, 3, 2, 15, 59, tzinfo=timezone.utc))
    assert (await tap(client, customer)).status_code == 409
    clock.set_now(datetime(2026, 3, 2, 16, 1, tzinfo=timezone.utc))
    assert (await tap(client, customer)).json()["date"] == "2026-03-03"


async def test_streak_cycle_wrap_and_reset(client, checkin_rules):
    customer = await make_customer()
    start = date(2026, 5, 1)
    earned = []
    for n in range(9):
        clock.set_now(at_local(start + timedelta(days=n)))
        body = (await tap(client, customer)).json()
        earned.append((body["streak"], body["day_in_cycle"], body["points"]))
    assert earned == [(1, 1, 5), (2, 2, 5), (3, 3, 15), (4, 4, 5), (5, 5, 5), (6, 6, 5), (7, 7, 35),
                      (8, 1, 5), (9, 2, 5)]
    # Missing 10 May resets the streak on 11 May.
    clock.set_now(at_local(date(2026, 5, 11)))
    body = (await tap(client, customer)).json()
    assert (body["streak"], body["day_in_cycle"], body["points"], body["tomorrow_points"]) == (1, 1, 5, 5)
    calendar = (await client.get("/app/check-ins", params={"month": "2026-05"},
                                 headers=customer_headers(customer))).json()
    assert [d["date"] for d in calendar["days"]][-2:] == ["2026-05-09", "2026-05-11"]
    assert calendar["streak"] == 1 and calendar["checked_in_today"] is True
    assert await assert_ledger_consistent(customer.id) == sum(p for _, _, p in earned) + 5


async def test_makeup_is_off_by_default_then_limited(client, checkin_rules):
    customer = await make_customer()
    headers = customer_headers(customer)
    clock.set_now(at_local(date(2026, 6, 1)))
    await tap(client, customer)
    clock.set_now(at_local(date(2026, 6, 3)))
    await tap(client, customer)  # missed 2 June: streak 1
    off = await client.post("/app/check-ins/makeup", json={"date": "2026-06-02"}, headers=headers)
    assert off.status_code == 409 and off.json()["code"] == "makeup_not_allowed"

    async with transaction() as conn:
        await update_rules(conn, None, {"makeup_enabled": True, "makeup_cost_points": 4, "makeup_per_month": 1})
    made = await client.post("/app/check-ins/makeup", json={"date": "2026-06-02"}, headers=headers)
    assert made.status_code == 201, made.text
    assert made.json() == {"date": "2026-06-02", "points": 0, "streak": 2, "makeup": True}
    # The streak after the made-up day continues: today is now day 3.
    calendar = (await client.get("/app/check-ins", headers=headers)).json()
    assert calendar["streak"] == 3 and calendar["makeup_left_this_month"] == 0
    # Balance: 5 + 5 earned, 4 paid.
    assert await assert_ledger_consistent(customer.id) == 6

    clock.set_now(at_local(date(2026, 6, 6)))  # missed 4 and 5 June
    limited = await client.post("/app/check-ins/makeup", json={"date": "2026-06-05"}, headers=headers)
    assert limited.status_code == 409 and limited.json()["code"] == "makeup_limit_reached"
    outside = await client.post("/app/check-ins/makeup", json={"date": "2026-05-20"}, headers=headers)
    assert outside.status_code == 409 and outside.json()["detail"]["reason"] == "outside_cycle"
    # A new month gives the allowance back.
    clock.set_now(at_local(date(2026, 7, 2)))
    await tap(client, customer)
    again = await client.post("/app/check-ins/makeup", json={"date": "2026-07-01"}, headers=headers)
    assert again.status_code == 201
    assert await assert_ledger_consistent(customer.id) == 6 + 5 - 4


async def test_concurrent_makeups_respect_the_monthly_limit(client, checkin_rules):
    customer = await make_customer()
    headers = customer_headers(customer)
    async with transaction() as conn:
        await update_rules(conn, None, {"makeup_enabled": True, "makeup_cost_points": 0, "makeup_per_month": 2})
    clock.set_now(at_local(date(2026, 8, 8)))
    days = [f"2026-08-0{d}" for d in range(2, 8)]
    responses = await asyncio.gather(*[
        client.post("/app/check-ins/makeup", json={"date": d}, headers=headers) for d in days
    ])
    assert sorted(r.status_code for r in responses) == [201, 201, 409, 409, 409, 409]
    assert await CheckIn.filter(customer_id=customer.id, makeup=True).count() == 2


async def test_many_customers_checking_in_at_once_all_succeed(client, checkin_rules):
    customers = [await make_customer() for _ in range(100)]
    responses = await asyncio.gather(*[tap(client, c) for c in customers])
    assert [r.status_code for r in responses] == [201] * 100, [r.text for r in responses if r.status_code != 201][:3]
    for c in customers[:5]:
        await assert_ledger_consistent(c.id)


async def _with_account(points: int = 0):
    """A customer as their first login leaves them (an account), holding `points` earned by a staff grant."""
    from points_mall.ledger import adjust_points, ensure_account

    customer = await make_customer()
    async with transaction() as conn:
        await ensure_account(conn, customer.id)
        if points:
            await adjust_points(conn, customer_id=customer.id, points=points, ref=f"grant:{customer.id}",
                                reason="grant")
    return customer


async def test_check_in_of_a_customer_with_an_account_writes_what_the_general_path_writes(client, checkin_rules):
    # A customer with an account takes the SQL path (one batch: add_credit_new_ref); one without the ORM path.
    with_account, without = await _with_account(points=40), await make_customer()
    responses = await asyncio.gather(*[tap(client, with_account) for _ in range(30)], tap(client, without))
    assert sorted(r.status_code for r in responses[:30]) == [201] + [409] * 29
    done = next(r.json() for r in responses[:30] if r.status_code == 201)
    assert (done["points"], done["streak"], done["balance"]) == (5, 1, 45)
    assert responses[30].json()["balance"] == 5
    assert await assert_ledger_consistent(with_account.id) == 45
    fast = await PointsLedgerEntry.get(customer_id=with_account.id, kind="check_in")
    general = await PointsLedgerEntry.get(customer_id=without.id, kind="check_in")
    for entry, balance in ((fast, 45), (general, 5)):
        assert entry.balance_after == balance and entry.delta == 5 and entry.detail == {}
        assert entry.ref == f"checkin:{entry.customer_id}:{done['date']}"  # type: ignore[attr-defined]
    assert (fast.reason, fast.expires_at, fast.original_ref) == (general.reason, general.expires_at, None)
    fast_lot = await PointsLot.get(entry_id=fast.id)
    general_lot = await PointsLot.get(entry_id=general.id)
    assert (fast_lot.points, fast_lot.remaining, fast_lot.expires_at) == (5, 5, general_lot.expires_at)
    account = await PointsAccount.get(customer_id=with_account.id)
    assert account.lifetime_earned == 45


async def test_a_credit_refused_in_its_batch_writes_no_entry_and_no_lot(checkin_rules):
    # The account's make-up count moved: the UPDATE changes nothing, and the entry and lot after it in the
    # batch must not take the balance from LAST_INSERT_ID(), which still holds the id inserted just before.
    from kernel.batch import Batch
    from points_mall.ledger import add_credit_new_ref
    from points_mall.models import EntryKind

    customer = await _with_account(points=40)
    before = (await PointsLedgerEntry.filter(customer_id=customer.id).count(),
              await PointsLot.filter(customer_id=customer.id).count())
    async with transaction() as conn:
        batch = Batch(conn)
        batch.add("INSERT INTO outbox_message (job_name, args, created_at, attempts, last_error)"
                  " VALUES ('test.credit', '[]', %s, 0, '')", [clock.now().replace(tzinfo=None)])
        credited = add_credit_new_ref(batch, customer_id=customer.id, points=5, kind=EntryKind.check_in,
                                      ref=f"test:{customer.id}", reason="test", expires_at=None, checkin_makeups=1)
        await batch.send()
        assert credited() is None
        await conn.execute_query("DELETE FROM outbox_message WHERE job_name = 'test.credit'")
    after = (await PointsLedgerEntry.filter(customer_id=customer.id).count(),
             await PointsLot.filter(customer_id=customer.id).count())
    assert after == before
    assert (await PointsAccount.get(customer_id=customer.id)).balance == 40


async def test_check_ins_and_spending_of_the_same_customers_interleave_without_losing_points(client, checkin_rules):
    from points_mall.ledger import spend_points

    customers = [await _with_account(points=100) for _ in range(20)]

    async def spend(customer, n: int) -> None:
        # As a route or job runs it: concurrent spends of neighbouring customers can deadlock on the lots'
        # (customer, remaining) index, and the edge runs the rolled-back transaction again.
        await run_in_transaction(lambda conn: spend_points(
            conn, customer_id=customer.id, points=7, kind="adjustment", ref=f"spend:{customer.id}:{n}",
            reason="spend"))

    responses = await asyncio.gather(*[tap(client, c) for c in customers],
                                     *[spend(c, n) for c in customers for n in range(2)])
    assert [r.status_code for r in responses[:20]] == [201] * 20
    for customer in customers:
        assert await assert_ledger_consistent(customer.id) == 100 + 5 - 14



class _Hold:
    """Holds the first call of a function, just after it returns, until the test lets it go: a fixed
    interleaving of two transactions instead of hoping `asyncio.gather` hits it."""

    def __init__(self) -> None:
        self.reached, self.go, self.used = asyncio.Event(), asyncio.Event(), False

    def after(self, fn):
        async def held(*args, **kwargs):
            result = await fn(*args, **kwargs)
            if not self.used:
                self.used = True
                self.reached.set()
                await self.go.wait()
            return result
        return held


async def _done_or_waiting_for_a_lock(task: asyncio.Task) -> None:
    """Until `task` has finished or one of this database's transactions waits for a lock (the held one's)."""
    from tortoise import connections

    for _ in range(1000):
        if task.done():
            return
        # A one-row statement of this database still running after 300 ms waits for a lock (MariaDB lists a
        # transaction waiting inside the optimiser's row read in neither innodb_trx nor innodb_locks).
        _, rows = await connections.get("default").execute_query(
            "SELECT COUNT(*) AS n FROM information_schema.processlist"
            " WHERE db = DATABASE() AND id <> CONNECTION_ID() AND info IS NOT NULL AND time_ms > 300")
        if rows[0]["n"]:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the other transaction neither finished nor waited for a lock")


# Where one transaction is held while the other runs as far as it can:
#   the check-in has read yesterday's streak (no row), and the make-up then commits;
#   the make-up holds the customer lock, and the check-in reads yesterday and reaches its insert (which waits:
#     the insert's foreign-key check takes a shared lock on the customer row);
#   the check-in has inserted today's row and credited it (one batch), and the make-up waits for the customer
#     lock (then sees that row).
_INTERLEAVINGS = {
    "check_in_read_yesterday": ("points_mall.checkin._rules_and_yesterday", "check_in"),
    "makeup_holds_the_customer_lock": ("points_mall.ledger._accounts.ensure_account", "makeup"),
    "check_in_inserted_today": ("points_mall.checkin._insert_check_in_and_credit", "check_in"),
}


@pytest.mark.parametrize("interleaving", sorted(_INTERLEAVINGS))
async def test_makeup_of_yesterday_racing_todays_check_in_leaves_today_continuing_the_streak(
    checkin_rules, monkeypatch, interleaving
):
    from points_mall import checkin

    customer = await make_customer()
    async with transaction() as conn:
        await update_rules(conn, None, {"makeup_enabled": True, "makeup_cost_points": 4, "makeup_per_month": 2})
    clock.set_now(at_local(date(2026, 6, 10)))
    await run_in_transaction(lambda conn: checkin.check_in(conn, customer.id))  # streak 1; 11 June is missed
    clock.set_now(at_local(date(2026, 6, 12)))

    target, held_side = _INTERLEAVINGS[interleaving]
    module, name = target.rsplit(".", 1)
    hold = _Hold()
    monkeypatch.setattr(target, hold.after(getattr(__import__(module, fromlist=[name]), name)))
    work = {
        "check_in": lambda: run_in_transaction(lambda conn: checkin.check_in(conn, customer.id)),
        "makeup": lambda: run_in_transaction(
            lambda conn: checkin.makeup_check_in(conn, customer.id, date(2026, 6, 11))),
    }
    held = asyncio.create_task(work[held_side]())
    await asyncio.wait_for(hold.reached.wait(), 10)
    other = asyncio.create_task(work["makeup" if held_side == "check_in" else "check_in"]())
    await _done_or_waiting_for_a_lock(other)
    hold.go.set()
    await asyncio.wait_for(asyncio.gather(held, other), 10)

    rows = {row.local_date: row for row in await CheckIn.filter(customer_id=customer.id)}
    assert (rows[date(2026, 6, 11)].streak, rows[date(2026, 6, 11)].makeup) == (2, True)
    today = rows[date(2026, 6, 12)]
    assert (today.streak, today.day_in_cycle) == (3, 3), f"today's row lost the made-up streak ({interleaving})"
    await assert_ledger_consistent(customer.id)
