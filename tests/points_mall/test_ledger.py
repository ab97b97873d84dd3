"""The ledger: earn, spend from the earliest-expiring lots, reversals, pending points, idempotent refs."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone

import pytest

from kernel import clock
from kernel.db import transaction
from kernel.outbox.models import OutboxMessage
from points_mall import ledger
from points_mall.errors import InsufficientPoints
from points_mall.models import PendingPoints, PendingStatus, PointsLedgerEntry, PointsLot
from points_mall.service import (
    customer_has_consumption,
    earn_points,
    record_consumption,
    refund_consumption,
    reverse_points,
    spend_points,
)
from tests.factories import make_customer
from tests.points_mall.factories import assert_ledger_consistent, balance_of, give_points


def ref() -> str:
    return "t:" + secrets.token_hex(6)


async def test_earn_is_idempotent_on_ref():
    customer = await make_customer()
    r = ref()
    async with transaction() as conn:
        first = await earn_points(conn, customer_id=customer.id, points=30, kind="campaign", ref=r, reason="x")
        again = await earn_points(conn, customer_id=customer.id, points=30, kind="campaign", ref=r, reason="x")
    assert first.id == again.id
    assert await assert_ledger_consistent(customer.id) == 30


async def test_spend_takes_earliest_expiring_lots_first():
    customer = await make_customer()
    clock.set_now(datetime(2026, 1, 10, 4, tzinfo=timezone.utc))
    await give_points(customer.id, 100, ref())  # earned January: expires end of January next year
    clock.set_now(datetime(2026, 3, 10, 4, tzinfo=timezone.utc))
    await give_points(customer.id, 50, ref())  # earned March
    async with transaction() as conn:
        await spend_points(conn, customer_id=customer.id, points=120, kind="redemption", ref=ref(), reason="mall")
    lots = await PointsLot.filter(customer_id=customer.id).order_by("id")
    assert [lot.remaining for lot in lots] == [0, 30]
    assert await assert_ledger_consistent(customer.id) == 30


async def test_spend_refuses_more_than_balance_and_changes_nothing():
    customer = await make_customer()
    await give_points(customer.id, 10, ref())
    with pytest.raises(InsufficientPoints):
        async with transaction() as conn:
            await spend_points(conn, customer_id=customer.id, points=11, kind="redemption", ref=ref(), reason="x")
    assert await assert_ledger_consistent(customer.id) == 10


async def test_reversing_a_spend_gives_points_back_with_their_expiry():
    customer = await make_customer()
    await give_points(customer.id, 40, ref())
    spend_ref = ref()
    async with transaction() as conn:
        await spend_points(conn, customer_id=customer.id, points=25, kind="redemption", ref=spend_ref, reason="x")
    back = ref()
    async with transaction() as conn:
        entry = await reverse_points(conn, original_ref=spend_ref, ref=back, reason="cancelled")
        again = await reverse_points(conn, original_ref=spend_ref, ref=back, reason="cancelled")
    assert entry.delta == 25 and again.id == entry.id
    # A second reversal under another ref finds nothing left to reverse.
    async with transaction() as conn:
        assert await reverse_points(conn, original_ref=spend_ref, ref=ref(), reason="again") is None
    original_lot = await PointsLot.filter(customer_id=customer.id).order_by("id").first()
    restored = await PointsLot.filter(entry_id=entry.id).get()
    assert restored.expires_at == original_lot.expires_at
    assert await assert_ledger_consistent(customer.id) == 40


async def test_reversing_spent_credit_stops_at_zero_and_records_shortfall():
    customer = await make_customer()
    credit = ref()
    await give_points(customer.id, 50, credit)
    async with transaction() as conn:
        await spend_points(conn, customer_id=customer.id, points=45, kind="redemption", ref=ref(), reason="x")
    async with transaction() as conn:
        entry = await reverse_points(conn, original_ref=credit, ref=ref(), reason="clawback")
    assert entry.delta == -5 and entry.detail["shortfall"] == 45
    assert await assert_ledger_consistent(customer.id) == 0
    account = await ledger.account_summary(None, customer.id)
    assert account.shortfall == 45


async def test_consumption_points_pending_then_released_and_outbox_job_written():
    customer = await make_customer()
    ext = "front:" + secrets.token_hex(4)
    async with transaction() as conn:
        consumption = await record_consumption(
            conn, customer_id=customer.id, amount_fen=128_800, source="front_desk", external_ref=ext, branch_id=1
        )
        repeat = await record_consumption(
            conn, customer_id=customer.id, amount_fen=128_800, source="front_desk", external_ref=ext, branch_id=1
        )
        assert await customer_has_consumption(conn, customer.id)
    assert repeat.id == consumption.id and consumption.points == 1288
    jobs = [j for j in await OutboxMessage.filter(job_name="referrals.consumption_recorded") if j.args[0] == consumption.id]
    assert len(jobs) == 1
    assert jobs[0].args[1:3] == [customer.id, 128_800]
    assert await balance_of(customer.id) == 0
    pending = await PendingPoints.get(ref=consumption.points_ref)
    assert pending.status == PendingStatus.pending and pending.points == 1288
    await assert_ledger_consistent(customer.id)

    clock.set_now(clock.now() + timedelta(days=8))
    async with transaction() as conn:
        entry = await ledger.release_pending(conn, pending.id)
    async with transaction() as conn:
        assert await ledger.release_pending(conn, pending.id) is None
    assert entry.delta == 1288 and entry.ref == consumption.points_ref
    assert await assert_ledger_consistent(customer.id) == 1288


async def test_refund_within_window_cancels_pending_points():
    customer = await make_customer()
    ext = "order:" + secrets.token_hex(4)
    async with transaction() as conn:
        consumption = await record_consumption(
            conn, customer_id=customer.id, amount_fen=10_000, source="order", external_ref=ext
        )
    async with transaction() as conn:
        await refund_consumption(conn, external_ref=ext, refunded_fen=4_000, ref="r1:" + ext)
        await refund_consumption(conn, external_ref=ext, refunded_fen=4_000, ref="r1:" + ext)  # repeat: no-op
    pending = await PendingPoints.get(ref=consumption.points_ref)
    assert pending.points == 60 and pending.status == PendingStatus.pending
    async with transaction() as conn:
        await refund_consumption(conn, external_ref=ext, refunded_fen=6_000, ref="r2:" + ext)
    pending = await PendingPoints.get(ref=consumption.points_ref)
    assert pending.status == PendingStatus.cancelled
    assert await assert_ledger_consistent(customer.id) == 0
    refunds = [j for j in await OutboxMessage.filter(job_name="referrals.consumption_refunded") if j.args[0] == consumption.id]
    assert [j.args[2] for j in refunds] == [4_000, 6_000]


async def test_refund_after_window_reverses_released_points():
    customer = await make_customer()
    ext = "front:" + secrets.token_hex(4)
    async with transaction() as conn:
        consumption = await record_consumption(
            conn, customer_id=customer.id, amount_fen=50_000, source="front_desk", external_ref=ext
        )
    clock.set_now(clock.now() + timedelta(days=8))
    pending = await PendingPoints.get(ref=consumption.points_ref)
    async with transaction() as conn:
        await ledger.release_pending(conn, pending.id)
    async with transaction() as conn:
        await refund_consumption(conn, external_ref=ext, refunded_fen=50_000, ref="full:" + ext)
    entries = await PointsLedgerEntry.filter(customer_id=customer.id).order_by("id")
    assert [e.delta for e in entries] == [500, -500]
    assert await assert_ledger_consistent(customer.id) == 0
