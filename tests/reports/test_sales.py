"""Consumption reports (repurchase, top 20% share, referred revenue, new customers by source) against
brute force over generated data: clinic-day boundaries in Asia/Shanghai, refunds folded after the fact
moving figures back, a second fold changing nothing, and the bulk rebuild agreeing with the folds."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta


from kernel import clock
from kernel.db import transaction
from reports import figures, summaries, views
from tests.booking.factories import make_branch
from tests.factories import make_customer
from tests.reports.factories import SH, acquire, consume, fold, local, refund

ADMIN = views.Principal(kind="staff", id=1, roles=frozenset({"admin"}))
NOW = local(2033, 7, 20)
SOURCES = ["customer_referral", "staff", "partner", "ad", "organic"]


@dataclass
class Sale:
    customer_id: int
    at: datetime
    amount: int
    branch: int  # 0 = none
    ref: str
    refunded: int = 0


@dataclass
class World:
    branches: list[int]
    sales: list[Sale] = field(default_factory=list)
    kinds: dict[int, str] = field(default_factory=dict)
    acquired: dict[int, datetime] = field(default_factory=dict)


def _instant(rng: random.Random, month: int) -> datetime:
    d = date(2033, month, rng.randint(1, 28 if month == 2 else 30))
    # Local midnight, the last second of the local day, and 07:59:59 / 08:00 local (the UTC midnight).
    hh, mm, ss = rng.choice([(0, 0, 0), (23, 59, 59), (7, 59, 59), (8, 0, 0), (rng.randint(9, 21), 30, 0)])
    return datetime(d.year, d.month, d.day, hh, mm, ss, tzinfo=SH)


async def _world(seed: int) -> World:
    rng = random.Random(seed)
    b1, b2 = (await make_branch()).id, (await make_branch()).id
    world = World(branches=[b1, b2])
    for _ in range(36):
        customer = await make_customer()
        kind = rng.choice(SOURCES)
        at = _instant(rng, rng.randint(1, 4))
        await acquire(customer.id, kind, at)
        world.kinds[customer.id], world.acquired[customer.id] = kind, at
        for _ in range(rng.randint(0, 5)):
            sale_at = _instant(rng, rng.randint(1, 5))
            branch = rng.choice([b1, b1, b2, 0])
            amount = rng.choice([1, 99, 10_000, 250_000, rng.randint(1, 900_000)])
            ref = await consume(customer.id, amount, sale_at, branch or None)
            world.sales.append(Sale(customer.id, sale_at, amount, branch, ref))
    # Hand-made edges: a second visit exactly 30 clinic days later at 23:59:59 (in a 30-day window), one
    # 31 days later at 00:00:00 (out), and two consumptions on one clinic day that are one visit.
    for gap, (hh, mm, ss) in ((30, (23, 59, 59)), (31, (0, 0, 0)), (0, (23, 59, 59))):
        customer = await make_customer()
        first = local(2033, 3, 10, 0, 0, 0)
        second = datetime(2033, 3, 10, hh, mm, ss, tzinfo=SH) + timedelta(days=gap)
        for at in (first, second):
            ref = await consume(customer.id, 5_000, at, b1)
            world.sales.append(Sale(customer.id, at, 5_000, b1, ref))
    return world


async def _refund_some(world: World, seed: int) -> None:
    rng = random.Random(seed + 1)
    for sale in rng.sample(world.sales, k=len(world.sales) // 3):
        fen = sale.amount if rng.random() < 0.6 else rng.randint(1, sale.amount)
        await refund(sale.ref, fen, NOW - timedelta(days=1))
        sale.refunded += fen


def _day(at: datetime) -> date:
    return at.astimezone(SH).date()


def brute_repurchase(world: World, within: int, branch: int | None) -> list[list]:
    by_customer: dict[int, list[Sale]] = defaultdict(list)
    for s in world.sales:
        if s.amount > s.refunded:
            by_customer[s.customer_id].append(s)
    cells: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for paid in by_customer.values():
        paid.sort(key=lambda s: s.at)  # ids follow creation order; instants are distinct per customer here
        days = []
        for s in paid:
            if _day(s.at) not in days:
                days.append(_day(s.at))
        first_branch = paid[0].branch
        if branch is not None and first_branch != branch:
            continue
        cell = cells[(days[0].strftime("%Y-%m"), first_branch)]
        cell[0] += 1
        cell[1] += len(days) > 1 and (days[1] - days[0]).days <= within
    return [[m, b, n, again, figures.bp(again, n)] for (m, b), (n, again) in sorted(cells.items())]


def brute_top(world: World, branch: int | None) -> dict[str, tuple[int, int, int, int]]:
    per: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for s in world.sales:
        if branch is not None and s.branch != branch:
            continue
        per[_day(s.at).strftime("%Y-%m")][s.customer_id] += s.amount - s.refunded
    out = {}
    for m, nets in per.items():
        values = sorted((v for v in nets.values() if v > 0), reverse=True)
        k = math.ceil(len(values) / 5)
        out[m] = (len(values), sum(values), k, sum(values[:k]))
    return out


def brute_new_customers(world: World) -> dict[str, dict[str, int]]:
    per: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for customer_id, at in world.acquired.items():
        per[_day(at).strftime("%Y-%m")][world.kinds[customer_id]] += 1
    return per


def brute_referred_revenue(world: World) -> dict[str, int]:
    per: dict[str, int] = defaultdict(int)
    for s in world.sales:
        if world.kinds.get(s.customer_id) == "customer_referral":
            per[_day(s.at).strftime("%Y-%m")] += s.amount - s.refunded
    return per


async def report(slug: str, **q) -> views.Report:
    q.setdefault("date_from", date(2033, 1, 1))
    q.setdefault("date_to", date(2033, 6, 30))
    async with transaction() as conn:
        return await views.run(conn, views.REPORTS[slug], ADMIN, views.Query(**q))


async def check_everything(world: World) -> None:
    # Repurchase within 30 days, per branch and for every branch of this test.
    for branch in (*world.branches, None):
        got = await report("repurchase", within_days=30, branch_id=branch)
        rows = [[r[0], r[1], r[3], r[4], r[5]] for r in got.rows]
        if branch is None:  # the range is this test's year alone, but keep to this test's branches
            rows = [r for r in rows if r[1] in (*world.branches, 0)]
        assert rows == brute_repurchase(world, 30, branch), branch
    # Top 20% per month, per branch.
    for branch in (world.branches[0], world.branches[1]):
        got = await report("top-customers", branch_id=branch)
        expected = brute_top(world, branch)
        for period, customers, revenue, top_n, top_rev, share in got.rows:
            want = expected.get(period, (0, 0, 0, 0))
            assert (customers, revenue, top_n, top_rev) == want, (branch, period)
            assert share == figures.bp(want[3], want[1])
    # New customers by source and the referral share, per month.
    got = await report("new-customers")
    expected = brute_new_customers(world)
    for row in got.rows:
        counts = expected.get(row[0], {})
        assert row[1:6] == [counts.get(s, 0) for s in SOURCES], row[0]
        assert row[6] == sum(counts.values())
    # Revenue of referred customers (net of refunds, on the consumption's clinic day).
    got = await report("referral-roi")
    revenue = brute_referred_revenue(world)
    assert {r[0]: r[6] for r in got.rows} == {r[0]: revenue.get(r[0], 0) for r in got.rows}


async def test_consumption_reports_equal_brute_force_through_refunds_and_rebuild():
    world = await _world(seed=18)
    await fold(NOW)
    await check_everything(world)

    # Refunds after the fact: the figures of the months they belong to move back.
    before = await report("top-customers", branch_id=world.branches[0])
    await _refund_some(world, seed=18)
    await fold(NOW)
    await check_everything(world)
    after = await report("top-customers", branch_id=world.branches[0])
    assert sum(r[2] for r in after.rows) < sum(r[2] for r in before.rows)  # revenue in the range went down

    # A second fold finds nothing new and changes nothing.
    again = await fold(NOW)
    assert again["consumption"] == 0 and again["consumption_refund"] == 0
    await check_everything(world)

    # The bulk rebuild computes the same tables from scratch.
    clock.set_now(NOW)
    async with transaction() as conn:
        await summaries.rebuild(conn)
    await check_everything(world)


async def test_a_refund_in_full_of_the_first_visit_makes_the_second_the_first():
    branch = (await make_branch()).id
    customer = await make_customer()
    first = await consume(customer.id, 10_000, local(2033, 9, 1, 0, 0, 0), branch)
    await consume(customer.id, 10_000, local(2033, 9, 20, 23, 59, 59), branch)
    await fold(local(2033, 9, 21))
    q = dict(date_from=date(2033, 9, 1), date_to=date(2033, 9, 30), branch_id=branch, within_days=30)
    got = await report("repurchase", **q)
    assert [r[3:] for r in got.rows] == [[1, 1, 10000]]  # one new customer, back in 19 days

    await refund(first, 10_000, local(2033, 9, 22))
    await fold(local(2033, 9, 22))
    got = await report("repurchase", **q)
    # The first visit is gone: the customer's first paid visit is now 20 September, with no second yet.
    assert [r[3:] for r in got.rows] == [[1, 0, 0]]


async def test_the_clinic_day_decides_the_month():
    """23:59:59 on 31 August in Shanghai is August; 00:00:00 on 1 September is September (both are 31 August in UTC)."""
    branch = (await make_branch()).id
    late, early = await make_customer(), await make_customer()
    await consume(late.id, 30_000, local(2033, 8, 31, 23, 59, 59), branch)
    await consume(early.id, 70_000, local(2033, 9, 1, 0, 0, 0), branch)
    await fold(local(2033, 9, 2))
    got = await report("top-customers", date_from=date(2033, 8, 1), date_to=date(2033, 9, 30), branch_id=branch)
    assert got.rows == [["2033-08", 1, 30_000, 1, 30_000, 10000], ["2033-09", 1, 70_000, 1, 70_000, 10000]]
