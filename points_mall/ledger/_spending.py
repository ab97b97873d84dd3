"""Spending points from the lots that expire first, and staff adjustments in either direction."""

from __future__ import annotations

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import F

from kernel import clock
from kernel.errors import ValidationFailed
from points_mall.errors import IdempotencyKeyReused, InsufficientPoints, PointsCustomerNotFound
from points_mall.ledger._accounts import (
    LockedPoints,
    _append,
    _check_positive,
    _locked_entry,
    _spendable_lots,
    lock_account,
)
from points_mall.ledger._earning import earn_points
from points_mall.models import EntryKind, PointsLedgerEntry, PointsLot, PointsLotUse

async def _take_from_lots(
    conn: BaseDBAsyncClient, entry: PointsLedgerEntry, lots: list[PointsLot], points: int
) -> None:
    """Take `points` from `lots` in order, recording what came from where (the account lock is held)."""
    left = points
    uses: list[PointsLotUse] = []
    for lot in lots:
        if left == 0:
            break
        take = min(lot.remaining, left)
        changed = await PointsLot.filter(id=lot.id, remaining__gte=take).using_db(conn).update(
            remaining=F("remaining") - take
        )
        if changed != 1:  # cannot happen while the account row is locked; refuse rather than guess
            raise InsufficientPoints(required=points)
        lot.remaining -= take
        left -= take
        uses.append(PointsLotUse(entry=entry, lot_id=lot.id, points=take))
    if left:
        raise InsufficientPoints(required=points)
    await PointsLotUse.bulk_create(uses, using_db=conn)


async def spend_points(
    conn: BaseDBAsyncClient, *, customer_id: int, points: int, kind: str, ref: str, reason: str,
    locked: "LockedPoints | None" = None,
) -> PointsLedgerEntry:
    """Debit points from the lots that expire first. Raises `InsufficientPoints`; idempotent on `ref`.

    After a refusal the caller's transaction must be rolled back (the usual `async with` does it).
    `locked`: the account and spendable lots the caller already read under `lock_points` in this
    transaction, for a ref derived from a unique row it has just inserted (no entry can hold it yet; the
    ref's unique key still guards) -- the lock, the ref look-up and the lots are then not read again.
    """
    _check_positive(points)
    kind = EntryKind(kind)
    now = clock.now()
    if locked is not None and locked.customer_id == customer_id:
        account, lots = locked.account, locked.lots
    else:
        account = await lock_account(conn, customer_id)
        existing = await PointsLedgerEntry.get_or_none(ref=ref, using_db=conn)
        if existing is not None:
            return existing
        lots = await _spendable_lots(conn, customer_id, now)
    available = sum(lot.remaining for lot in lots)
    if available < points:
        raise InsufficientPoints(balance=available, required=points)
    entry = await _append(conn, account, delta=-points, kind=kind, ref=ref, reason=reason)
    if entry is None:
        return await _locked_entry(conn, ref)
    await _take_from_lots(conn, entry, lots, points)
    return entry


async def adjust_points(
    conn: BaseDBAsyncClient, *, customer_id: int, points: int, ref: str, reason: str
) -> tuple[PointsLedgerEntry, int, bool]:
    """A staff adjustment: add (points > 0) or remove points under `ref`. Returns (entry, balance, created).

    A repeated `ref` returns the first entry; the same `ref` with another customer or amount is refused.
    """
    if points == 0:
        raise ValidationFailed("points cannot be zero.", field="points")
    try:
        # First: the ref lookup below then sees what a concurrent retry of this adjustment committed.
        account = await lock_account(conn, customer_id)
    except PointsCustomerNotFound as exc:
        raise PointsCustomerNotFound(field="customer_id") from exc
    existing = await PointsLedgerEntry.get_or_none(ref=ref, using_db=conn)
    if existing is not None:
        if existing.customer_id != customer_id or existing.delta != points:  # type: ignore[attr-defined]
            raise IdempotencyKeyReused(field="Idempotency-Key", entry_id=existing.id)
        return existing, account.balance, False
    if points > 0:
        entry = await earn_points(conn, customer_id=customer_id, points=points, kind=EntryKind.adjustment, ref=ref,
                                  reason=reason)
    else:
        entry = await spend_points(conn, customer_id=customer_id, points=-points, kind=EntryKind.adjustment, ref=ref,
                                   reason=reason)
    return entry, entry.balance_after, True
