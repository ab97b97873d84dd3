"""Property: after any sequence of earn / spend / expire / consume / refund / reverse, the balance equals the ledger."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernel import clock
from kernel.db import transaction
from points_mall import tasks
from points_mall.errors import InsufficientPoints
from points_mall.models import Consumption
from points_mall.service import earn_points, record_consumption, refund_consumption, reverse_points, spend_points
from tests.factories import make_customer
from tests.points_mall.factories import assert_ledger_consistent

operations = st.lists(
    st.one_of(
        st.tuples(st.just("earn"), st.integers(1, 500)),
        st.tuples(st.just("spend"), st.integers(1, 600)),
        st.tuples(st.just("consume"), st.integers(1, 200_000)),
        st.tuples(st.just("refund"), st.integers(1, 100)),  # percent of what is left of the last consumption
        st.tuples(st.just("reverse_spend"), st.just(0)),
        st.tuples(st.just("reverse_earn"), st.just(0)),
        st.tuples(st.just("days_pass"), st.integers(1, 200)),  # then the release and expiry jobs run
    ),
    min_size=1,
    max_size=14,
)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
async def test_balance_always_equals_ledger(ops):
    clock.set_now(datetime(2026, 1, 15, 3, tzinfo=timezone.utc))
    customer = await make_customer()
    spends: list[str] = []
    earns: list[str] = []
    consumptions: list[str] = []
    for op, value in ops:
        ref = "p:" + secrets.token_hex(6)
        try:
            async with transaction() as conn:
                if op == "earn":
                    await earn_points(conn, customer_id=customer.id, points=value, kind="campaign", ref=ref, reason="p")
                    earns.append(ref)
                elif op == "spend":
                    await spend_points(conn, customer_id=customer.id, points=value, kind="redemption", ref=ref,
                                       reason="p")
                    spends.append(ref)
                elif op == "consume":
                    await record_consumption(conn, customer_id=customer.id, amount_fen=value, source="order",
                                             external_ref=ref)
                    consumptions.append(ref)
                elif op == "refund" and consumptions:
                    c = await Consumption.get(external_ref=consumptions[-1], using_db=conn)
                    left = c.amount_fen - c.refunded_fen
                    if left > 0:
                        await refund_consumption(conn, external_ref=c.external_ref,
                                                 refunded_fen=max(1, left * value // 100), ref=ref)
                elif op == "reverse_spend" and spends:
                    await reverse_points(conn, original_ref=spends.pop(), ref=ref, reason="p")
                elif op == "reverse_earn" and earns:
                    await reverse_points(conn, original_ref=earns.pop(), ref=ref, reason="p")
        except InsufficientPoints:
            pass  # a refused spend must leave everything as it was; checked below
        if op == "days_pass":
            clock.advance(timedelta(days=value))
            await tasks.release_pending_points({})
            await tasks.expire_points({})
        await assert_ledger_consistent(customer.id)
