"""An order placed through parameterised SQL (kernel.rows) is the same row the ORM would have written, and the
instance handed back is what was stored."""

from __future__ import annotations

from datetime import timedelta

import pytest

from kernel import clock
from kernel.db import transaction
from kernel.rows import RowInsert
from crm.models import MarketingProfile
from orders.models import Order, OrderLine, OrderStatus
from orders.placing import LineSpec, create_order
from tests.factories import make_customer


class _Rollback(Exception):
    """Ends the test's transaction: the order's close job must not outlive the test."""


async def test_the_order_returned_is_the_row_stored_with_its_lines_and_split():
    customer = await make_customer()
    pay_by = clock.now() + timedelta(minutes=3)
    split = dict(list_fen=2500, member_discount_fen=100, coupon_fen=300, points_used=50, points_cash_fen=50,
                 stored_value_fen=1000, wechat_fen=550, idempotency_key="k-1", request_digest="d" * 64)
    with pytest.raises(_Rollback):
        async with transaction() as conn:
            assert conn.capabilities.dialect == "mysql"  # the SQL path is what this test is about
            order = await create_order(
                conn, customer_id=customer.id, description="团购 " + "x" * 200, pay_by=pay_by, split=split,
                lines=[LineSpec(kind="campaign_entry", title="双人卡", quantity=2, unit_price_fen=999),
                       LineSpec(kind="campaign_entry", title="t" * 200, quantity=1, unit_price_fen=502, ref_id=7)],
            )
            stored = await Order.get(id=order.id).using_db(conn)
            for name in Order._meta.fields_db_projection:
                assert getattr(order, name) == getattr(stored, name), name
            assert order.status is OrderStatus.pending_payment and order.total_fen == 2500
            assert order.expires_at == pay_by and len(order.description) == 127
            lines = await OrderLine.filter(order_id=order.id).using_db(conn).order_by("id")
            assert [(ln.kind, ln.title, ln.quantity, ln.unit_price_fen, ln.amount_fen, ln.ref_id, ln.released_at)
                    for ln in lines] == [("campaign_entry", "双人卡", 2, 999, 1998, None, None),
                                         ("campaign_entry", "t" * 127, 1, 502, 502, 7, None)]
            raise _Rollback()


async def test_a_row_insert_refuses_an_unknown_column_or_a_missing_value():
    with pytest.raises(_Rollback):
        async with transaction() as conn:
            rows = RowInsert(OrderLine)
            with pytest.raises(TypeError, match="no column"):
                await rows.insert(conn, order_id=1, kind="x", title="x", quantity=1, unit_price_fen=1,
                                  amount_fen=1, colour="red")
            with pytest.raises(TypeError, match="amount_fen"):
                await rows.insert(conn, order_id=1, kind="x", title="x", quantity=1, unit_price_fen=1)
            raise _Rollback()


async def test_a_model_whose_key_the_caller_gives_comes_back_as_stored():
    customer = await make_customer()
    with pytest.raises(_Rollback):
        async with transaction() as conn:
            at = clock.now()
            profile = await RowInsert(MarketingProfile).insert(conn, customer_id=customer.id, marketing_opt_out=True,
                                                               opt_out_changed_at=at)
            stored = await MarketingProfile.get(customer_id=customer.id).using_db(conn)
            for name in MarketingProfile._meta.fields_db_projection:
                assert getattr(profile, name) == getattr(stored, name), name
            assert profile.customer_id == customer.id and profile.last_marketing_at is None
            raise _Rollback()
