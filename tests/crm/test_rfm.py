"""RFM scoring: hand-computed customers on both sides of every threshold, the history of each day, and
movements recorded once per change (a second run of the same day changes nothing)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from crm import tasks
from crm.models import RfmClass, RfmHistory, RfmMovement, RfmScore
from crm.rfm import classify
from kernel import clock
from tests.crm.factories import make_consumption
from tests.factories import make_customer

SH = ZoneInfo("Asia/Shanghai")
# Noon in Shanghai on 15 June 2026; default rules: window 365 days, R ≤ 90 days, F ≥ 2, M ≥ ¥3,000.
NOW = datetime(2026, 6, 15, 12, 0, tzinfo=SH)


def local(y: int, m: int, d: int, hh: int = 12, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, ss, tzinfo=SH)


def test_the_eight_classes_are_the_r_f_m_combinations():
    assert classify(True, True, True) == RfmClass.important_value
    assert classify(True, False, True) == RfmClass.important_development
    assert classify(False, True, True) == RfmClass.important_retain
    assert classify(False, False, True) == RfmClass.important_winback
    assert classify(True, True, False) == RfmClass.general_value
    assert classify(True, False, False) == RfmClass.general_development
    assert classify(False, True, False) == RfmClass.general_retain
    assert classify(False, False, False) == RfmClass.general_winback


async def _score(day: datetime) -> None:
    clock.set_now(day)
    await tasks.score_customers({})


async def _class(customer_id: int) -> tuple[RfmClass, int, int, int]:
    s = await RfmScore.get(customer_id=customer_id)
    return s.rfm_class, s.recency_days, s.frequency, s.monetary_fen


async def test_customers_at_the_thresholds_edges():
    clock.set_now(NOW)
    people = {name: await make_customer() for name in "ABCDEFGH"}
    c = {name: p.id for name, p in people.items()}
    # A: last visit exactly 90 local days ago (late evening, Shanghai), F = 2, M = 300,000 fen: all three on the edge.
    await make_consumption(c["A"], 100_000, local(2026, 1, 10))
    await make_consumption(c["A"], 200_000, local(2026, 3, 17, 23, 59))
    # B: the same, but 91 days ago (just after local midnight): R drops.
    await make_consumption(c["B"], 100_000, local(2026, 1, 10))
    await make_consumption(c["B"], 200_000, local(2026, 3, 16, 0, 1))
    # C: one visit only (F just below).
    await make_consumption(c["C"], 300_000, local(2026, 6, 1))
    # D: M one fen below.
    await make_consumption(c["D"], 150_000, local(2026, 6, 1))
    await make_consumption(c["D"], 149_999, local(2026, 6, 5))
    # E: the window's first instant counts, the instant before it does not.
    await make_consumption(c["E"], 150_000, local(2025, 6, 16, 0, 0, 0))
    await make_consumption(c["E"], 500_000, local(2025, 6, 15, 23, 59, 59))
    await make_consumption(c["E"], 150_000, local(2026, 6, 10))
    # F: the recent visit was refunded in full (neither recent nor counted); the old one is 200 days ago.
    await make_consumption(c["F"], 100_000, NOW - timedelta(days=200))
    await make_consumption(c["F"], 900_000, local(2026, 6, 14), refunded_fen=900_000)
    # G: never consumed: no class. H: partly refunded, counted net.
    await make_consumption(c["H"], 400_000, local(2026, 6, 14), refunded_fen=150_000)

    await _score(NOW)

    assert await _class(c["A"]) == (RfmClass.important_value, 90, 2, 300_000)
    assert await _class(c["B"]) == (RfmClass.important_retain, 91, 2, 300_000)
    assert await _class(c["C"]) == (RfmClass.important_development, 14, 1, 300_000)
    assert await _class(c["D"]) == (RfmClass.general_value, 10, 2, 299_999)
    assert await _class(c["E"]) == (RfmClass.important_value, 5, 2, 300_000)
    assert await _class(c["F"]) == (RfmClass.general_winback, 200, 1, 100_000)
    assert await RfmScore.get_or_none(customer_id=c["G"]) is None
    assert await _class(c["H"]) == (RfmClass.general_development, 1, 1, 250_000)
    # First scoring: a movement from nothing into the class, one per scored customer, and one history row each.
    ids = list(c.values())
    assert await RfmMovement.filter(customer_id__in=ids, from_class=None).count() == 7
    assert await RfmHistory.filter(customer_id__in=ids, as_of=NOW.date()).count() == 7


async def test_movements_are_recorded_once_per_change_and_history_kept_per_day():
    clock.set_now(NOW)
    edge = await make_customer()  # recent on the edge: tomorrow it drops to 重要保持
    grower = await make_customer()  # one visit today, a second tomorrow: 重要发展 → 重要价值
    steady = await make_customer()
    await make_consumption(edge.id, 150_000, local(2026, 1, 10))
    await make_consumption(edge.id, 150_000, local(2026, 3, 17))
    await make_consumption(grower.id, 300_000, local(2026, 6, 14))
    await make_consumption(steady.id, 100_000, local(2026, 6, 1))
    ids = [edge.id, grower.id, steady.id]

    await _score(NOW)
    await _score(NOW)  # the same day again: same rows, no new movement
    assert await RfmMovement.filter(customer_id__in=ids).count() == 3
    assert await RfmHistory.filter(customer_id__in=ids).count() == 3

    tomorrow = NOW + timedelta(days=1)
    clock.set_now(tomorrow)
    await make_consumption(grower.id, 10_000, tomorrow - timedelta(hours=1))
    await _score(tomorrow)
    await _score(tomorrow)

    day2 = {m.customer_id: (m.from_class, m.to_class)
            for m in await RfmMovement.filter(customer_id__in=ids, as_of=tomorrow.date())}
    assert day2 == {
        edge.id: (RfmClass.important_value, RfmClass.important_retain),
        grower.id: (RfmClass.important_development, RfmClass.important_value),
    }
    assert await RfmHistory.filter(customer_id__in=ids).count() == 6
    assert (await RfmScore.get(customer_id=steady.id)).previous_class == RfmClass.general_development


@pytest.mark.parametrize("threshold", ["recency_days", "frequency_min", "monetary_min_fen"])
async def test_staff_thresholds_move_the_edges(threshold):
    from crm import rfm
    from kernel.db import transaction

    clock.set_now(NOW)
    customer = await make_customer()
    await make_consumption(customer.id, 150_000, local(2026, 3, 17))
    await make_consumption(customer.id, 150_000, local(2026, 1, 10))
    await _score(NOW)
    assert (await RfmScore.get(customer_id=customer.id)).rfm_class == RfmClass.important_value
    raised = {"recency_days": 89, "frequency_min": 3, "monetary_min_fen": 300_001}
    async with transaction() as conn:
        before = await rfm.get_rules(conn)
        original = {threshold: getattr(before, threshold)}
        await rfm.update_rules(conn, {threshold: raised[threshold]}, staff_id=1)
    try:
        await _score(NOW)
        expected = {"recency_days": RfmClass.important_retain, "frequency_min": RfmClass.important_development,
                    "monetary_min_fen": RfmClass.general_value}[threshold]
        assert (await RfmScore.get(customer_id=customer.id)).rfm_class == expected
    finally:
        async with transaction() as conn:
            await rfm.update_rules(conn, original, staff_id=1)
