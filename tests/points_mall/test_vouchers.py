"""Vouchers: idempotent issue per source, cancel of the unredeemed ones, one redemption under concurrency."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta

import pytest

from kernel import clock
from kernel.db import transaction
from points_mall.errors import VoucherAlreadyRedeemed, VoucherExpired, VoucherWrongBranch
from points_mall.models import Voucher, VoucherStatus
from points_mall.vouchers import cancel_vouchers, expire_due_vouchers, issue_vouchers, redeem_voucher
from tests.factories import make_customer


async def issue(customer_id: int, source_id: str, quantity: int = 1, **kwargs) -> list[Voucher]:
    async with transaction() as conn:
        return await issue_vouchers(
            conn, customer_id=customer_id, source_type="group_order", source_id=source_id, title="Hydrating facial",
            quantity=quantity, valid_until=kwargs.pop("valid_until", clock.now() + timedelta(days=30)), **kwargs,
        )


async def test_issue_is_idempotent_per_source_and_codes_are_unguessable():
    customer = await make_customer()
    source = secrets.token_hex(4)
    first = await issue(customer.id, source, quantity=3, branch_ids=[2, 1])
    again = await issue(customer.id, source, quantity=3)
    assert [v.id for v in first] == [v.id for v in again]
    assert len({v.code for v in first}) == 3
    assert all(len(v.code) == 16 and v.qr_text.endswith(v.code) for v in first)
    assert first[0].branch_ids == [1, 2]


async def test_concurrent_issue_for_one_source_gives_one_set():
    customer = await make_customer()
    source = secrets.token_hex(4)
    results = await asyncio.gather(*[issue(customer.id, source, quantity=2) for _ in range(5)], return_exceptions=True)
    assert await Voucher.filter(source_type="group_order", source_id=source).count() == 2
    ok = [r for r in results if not isinstance(r, Exception)]
    assert ok and all(sorted(v.id for v in r) == sorted(v.id for v in ok[0]) for r in ok)


async def test_cancel_vouchers_cancels_only_unredeemed():
    customer = await make_customer()
    source = secrets.token_hex(4)
    vouchers = await issue(customer.id, source, quantity=2)
    async with transaction() as conn:
        await redeem_voucher(conn, code=vouchers[0].code, branch_id=1, staff_id=1)
    async with transaction() as conn:
        assert await cancel_vouchers(conn, source_type="group_order", source_id=source, reason="group failed") == 1
    async with transaction() as conn:
        assert await cancel_vouchers(conn, source_type="group_order", source_id=source, reason="again") == 0
    statuses = [v.status for v in await Voucher.filter(source_id=source).order_by("seq")]
    assert statuses == [VoucherStatus.redeemed, VoucherStatus.cancelled]


async def test_voucher_redeemed_once_under_concurrent_attempts():
    customer = await make_customer()
    [voucher] = await issue(customer.id, secrets.token_hex(4))

    async def attempt(i: int):
        async with transaction() as conn:
            return await redeem_voucher(conn, code=voucher.code.lower(), branch_id=1, staff_id=i)

    results = await asyncio.gather(*[attempt(i) for i in range(20)], return_exceptions=True)
    wins = [r for r in results if isinstance(r, Voucher)]
    assert len(wins) == 1
    assert all(isinstance(r, VoucherAlreadyRedeemed) for r in results if not isinstance(r, Voucher))


async def test_wrong_branch_and_expired_are_refused_and_expiry_runs_once():
    customer = await make_customer()
    [limited] = await issue(customer.id, secrets.token_hex(4), branch_ids=[7])
    with pytest.raises(VoucherWrongBranch):
        async with transaction() as conn:
            await redeem_voucher(conn, code=limited.code, branch_id=8, staff_id=1)
    [short] = await issue(customer.id, secrets.token_hex(4), valid_until=clock.now() + timedelta(hours=1))
    clock.set_now(clock.now() + timedelta(hours=2))
    with pytest.raises(VoucherExpired):
        async with transaction() as conn:
            await redeem_voucher(conn, code=short.code, branch_id=1, staff_id=1)
    async with transaction() as conn:
        first = await expire_due_vouchers(conn)
    async with transaction() as conn:
        second = await expire_due_vouchers(conn)
    assert short.id in [v.id for v in first] and short.id not in [v.id for v in second]
    assert (await Voucher.get(id=short.id)).status == VoucherStatus.expired
