"""Factories and assertions of the points room's tests."""

from __future__ import annotations

from tortoise.functions import Sum

from kernel.db import transaction
from points_mall.models import (
    MallItem, MallItemKind, PendingPoints, PendingStatus, PointsAccount, PointsLedgerEntry, PointsLot,
)
from points_mall.service import earn_points


async def give_points(customer_id: int, points: int, ref: str, **kwargs) -> None:
    async with transaction() as conn:
        await earn_points(conn, customer_id=customer_id, points=points, kind=kwargs.pop("kind", "campaign"),
                          ref=ref, reason=kwargs.pop("reason", "test grant"), **kwargs)


async def balance_of(customer_id: int) -> int:
    account = await PointsAccount.get_or_none(customer_id=customer_id)
    return account.balance if account else 0


async def assert_ledger_consistent(customer_id: int) -> int:
    """balance == SUM(ledger) == SUM(lot.remaining) >= 0, pending == SUM(pending rows). Returns the balance."""
    account = await PointsAccount.get_or_none(customer_id=customer_id)
    balance = account.balance if account else 0
    ledger = await PointsLedgerEntry.filter(customer_id=customer_id).annotate(s=Sum("delta")).values("s")
    lots = await PointsLot.filter(customer_id=customer_id).annotate(s=Sum("remaining")).values("s")
    pending = await PendingPoints.filter(customer_id=customer_id, status=PendingStatus.pending).annotate(
        s=Sum("points")
    ).values("s")
    ledger_sum = int(ledger[0]["s"] or 0) if ledger else 0
    lot_sum = int(lots[0]["s"] or 0) if lots else 0
    pending_sum = int(pending[0]["s"] or 0) if pending else 0
    assert balance >= 0
    assert balance == ledger_sum, (balance, ledger_sum)
    assert balance == lot_sum, (balance, lot_sum)
    assert (account.pending if account else 0) == pending_sum
    return balance


async def make_item(**overrides) -> MallItem:
    from kernel import clock

    now = clock.now()
    fields = dict(kind=MallItemKind.gift, title="Lipstick", points_price=100, stock_total=10, on_shelf=True,
                  voucher_valid_days=30, created_at=now, updated_at=now)
    fields.update(overrides)
    return await MallItem.create(**fields)


async def funded_customer(points: int, **overrides):
    """A customer with an account holding `points` (as after login and a campaign grant)."""
    import secrets

    from tests.factories import make_customer

    customer = await make_customer(**overrides)
    if points:
        await give_points(customer.id, points, "fund:" + secrets.token_hex(6))
    return customer
