"""Reversing an earlier effect: pending points cancelled, a credit taken back, a debit given back into lots."""

from __future__ import annotations

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import F

from kernel import clock
from points_mall.errors import OriginalEntryNotFound
from points_mall.ledger._accounts import _append, by_expiry, _check_positive, _locked_entry, lock_account
from points_mall.ledger._spending import _take_from_lots
from points_mall.models import (
    EntryKind,
    PendingPoints,
    PendingStatus,
    PointsAccount,
    PointsLedgerEntry,
    PointsLot,
    PointsLotUse,
)
from points_mall.rules import get_rules, lot_expiry

async def _reversed_so_far(conn: BaseDBAsyncClient, original_ref: str) -> int:
    """Points of the original already reversed (including shortfalls that could not be taken back)."""
    entries = await PointsLedgerEntry.filter(
        original_ref=original_ref, kind=EntryKind.reversal
    ).using_db(conn).select_for_update()
    return sum(int(e.detail.get("requested", abs(e.delta))) for e in entries)


async def reverse_points(
    conn: BaseDBAsyncClient,
    *,
    original_ref: str,
    ref: str,
    reason: str,
    points: int | None = None,
) -> PointsLedgerEntry | None:
    """Undo an earlier effect (all of it, or `points` of it). Idempotent on `ref`.

    - Pending points not yet released are cancelled (or reduced): no ledger entry, returns None.
    - A credit is taken back; if the customer already spent the points the balance stops at zero and
      the missing part is recorded as the account's shortfall.
    - A debit (e.g. a mall redemption) is given back into lots with the expiry the points had.
    Returns None as well when there is nothing left to reverse.
    """
    if points is not None:
        _check_positive(points)
    pending = await PendingPoints.get_or_none(ref=original_ref, using_db=conn)
    if pending is not None and pending.status != PendingStatus.released:
        await lock_account(conn, pending.customer_id)  # type: ignore[attr-defined]
        await _reduce_pending(conn, pending.id, points)
        return None
    original = await PointsLedgerEntry.get_or_none(ref=original_ref, using_db=conn)
    if original is None:
        raise OriginalEntryNotFound(original_ref=original_ref)
    account = await lock_account(conn, original.customer_id)  # type: ignore[attr-defined]
    existing = await PointsLedgerEntry.get_or_none(ref=ref, using_db=conn)
    if existing is not None:
        return existing
    left = abs(original.delta) - await _reversed_so_far(conn, original_ref)
    amount = left if points is None else min(points, left)
    if amount <= 0:
        return None
    if original.delta > 0:
        return await _take_back_credit(conn, account, original, amount, ref, reason)
    return await _give_back_debit(conn, account, original, amount, ref, reason)


async def _reduce_pending(conn: BaseDBAsyncClient, pending_id: int, points: int | None) -> None:
    pending = await PendingPoints.filter(id=pending_id).using_db(conn).select_for_update().get()
    if pending.status != PendingStatus.pending:
        return
    take = pending.points if points is None else min(points, pending.points)
    now = clock.now()
    if take == pending.points:
        changed = await PendingPoints.filter(id=pending.id, status=PendingStatus.pending).using_db(conn).update(
            status=PendingStatus.cancelled, settled_at=now
        )
    else:
        changed = await PendingPoints.filter(
            id=pending.id, status=PendingStatus.pending, points__gte=take
        ).using_db(conn).update(points=F("points") - take)
    if changed == 1:
        await PointsAccount.filter(customer_id=pending.customer_id).using_db(conn).update(  # type: ignore[attr-defined]
            pending=F("pending") - take, updated_at=now
        )


async def _take_back_credit(
    conn: BaseDBAsyncClient, account: PointsAccount, original: PointsLedgerEntry, amount: int, ref: str, reason: str
) -> PointsLedgerEntry:
    lots = await PointsLot.filter(
        customer_id=account.customer_id, remaining__gt=0  # type: ignore[attr-defined]
    ).using_db(conn).select_for_update()
    # The original's own lot first, then the rest by expiry.
    lots.sort(key=lambda lot: (lot.entry_id != original.id, *by_expiry(lot)))  # type: ignore[attr-defined]
    take = min(amount, account.balance, sum(lot.remaining for lot in lots))
    shortfall = amount - take
    entry = await _append(
        conn, account, delta=-take, kind=EntryKind.reversal, ref=ref, reason=reason,
        original_ref=original.ref, detail={"requested": amount, "shortfall": shortfall},
    )
    if entry is None:
        return await _locked_entry(conn, ref)
    if take:
        await _take_from_lots(conn, entry, lots, take)
    if shortfall:
        await PointsAccount.filter(id=account.id).using_db(conn).update(shortfall=F("shortfall") + shortfall)
        account.shortfall += shortfall
    return entry


async def _give_back_debit(
    conn: BaseDBAsyncClient, account: PointsAccount, original: PointsLedgerEntry, amount: int, ref: str, reason: str
) -> PointsLedgerEntry:
    entry = await _append(
        conn, account, delta=amount, kind=EntryKind.reversal, ref=ref, reason=reason,
        original_ref=original.ref, detail={"requested": amount},
    )
    if entry is None:
        return await _locked_entry(conn, ref)
    uses = await PointsLotUse.filter(entry_id=original.id).using_db(conn).select_for_update().prefetch_related("lot")
    # Latest-expiring first: a partial give-back keeps the longest life the points had.
    uses.sort(key=lambda use: by_expiry(use.lot), reverse=True)
    left = amount
    now = clock.now()
    for use in uses:
        if left == 0:
            break
        give = min(use.points - use.restored, left)
        if give <= 0:
            continue
        await PointsLotUse.filter(id=use.id).using_db(conn).update(restored=F("restored") + give)
        # The points keep the expiry they had; if it has passed, the next expiry run takes them.
        await PointsLot.create(
            customer_id=account.customer_id,  # type: ignore[attr-defined]
            entry=entry, points=give, remaining=give, earned_at=now, expires_at=use.lot.expires_at, using_db=conn,
        )
        left -= give
    if left:
        # A debit without lot uses (should not exist) still gives the points back, under today's policy.
        rules = await get_rules(conn)
        await PointsLot.create(
            customer_id=account.customer_id,  # type: ignore[attr-defined]
            entry=entry, points=left, remaining=left, earned_at=now, expires_at=lot_expiry(rules, now), using_db=conn,
        )
    return entry
