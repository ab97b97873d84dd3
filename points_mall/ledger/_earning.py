"""Earning points: a credit becomes a ledger entry and a lot (or pending points held until their release)."""

from __future__ import annotations

from datetime import datetime

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F

from kernel import clock
from points_mall.ledger._accounts import _append, _check_positive, _existing, _locked_entry, lock_account
from points_mall.models import EntryKind, PendingPoints, PendingStatus, PointsAccount, PointsLedgerEntry, PointsLot, PointsRules
from points_mall.rules import get_rules, lot_expiry

async def earn_points(
    conn: BaseDBAsyncClient,
    *,
    customer_id: int,
    points: int,
    kind: str,
    ref: str,
    reason: str,
    pending_until: datetime | None = None,
    earned_at: datetime | None = None,
    rules: PointsRules | None = None,
    new_ref: bool = False,
) -> PointsLedgerEntry | PendingPoints:
    """Credit points as a new lot (or hold them as pending until `pending_until`). Idempotent on `ref`.

    Returns the ledger entry, or the `PendingPoints` row while the points are held. `rules`: the rules
    the caller already read in this transaction. `new_ref`: the caller has just inserted, in this
    transaction, the unique row the ref is derived from (a check-in's `(customer, day)`), so no entry or
    pending row can hold the ref yet and the two look-ups are skipped; the ref's unique key still guards.
    """
    _check_positive(points)
    kind = EntryKind(kind)
    account = await lock_account(conn, customer_id)
    existing = None if new_ref else await _existing(conn, ref)
    if existing is not None:
        return existing
    now = clock.now()
    earned_at = earned_at or now
    if pending_until is not None and pending_until > now:
        try:
            pending = await PendingPoints.create(
                customer_id=customer_id, points=points, kind=kind, ref=ref, reason=reason[:255],
                earned_at=earned_at, release_at=pending_until, using_db=conn,
            )
        except IntegrityError:
            return await PendingPoints.filter(ref=ref).using_db(conn).select_for_update().get()
        await PointsAccount.filter(id=account.id).using_db(conn).update(pending=F("pending") + points, updated_at=now)
        account.pending += points
        return pending
    return await _credit(conn, account, points=points, kind=kind, ref=ref, reason=reason, earned_at=earned_at,
                         rules=rules)


async def _credit(
    conn: BaseDBAsyncClient,
    account: PointsAccount,
    *,
    points: int,
    kind: EntryKind,
    ref: str,
    reason: str,
    earned_at: datetime,
    rules: PointsRules | None = None,
) -> PointsLedgerEntry:
    rules = rules or await get_rules(conn)
    expires_at = lot_expiry(rules, earned_at)
    entry = await _append(
        conn, account, delta=points, kind=kind, ref=ref, reason=reason, expires_at=expires_at,
        also={"lifetime_earned": F("lifetime_earned") + points},
    )
    if entry is None:
        return await _locked_entry(conn, ref)
    await PointsLot.create(
        customer_id=account.customer_id,  # type: ignore[attr-defined]
        entry=entry, points=points, remaining=points, earned_at=earned_at, expires_at=expires_at, using_db=conn,
    )
    return entry


async def release_pending(conn: BaseDBAsyncClient, pending_id: int) -> PointsLedgerEntry | None:
    """Move held points into the ledger once their hold has passed; safe to call twice."""
    pending = await PendingPoints.get_or_none(id=pending_id, using_db=conn)
    if pending is None:
        return None
    account = await lock_account(conn, pending.customer_id)  # type: ignore[attr-defined]
    pending = await PendingPoints.filter(id=pending_id).using_db(conn).select_for_update().get()
    now = clock.now()
    if pending.status != PendingStatus.pending or pending.release_at > now:
        return None
    changed = await PendingPoints.filter(id=pending.id, status=PendingStatus.pending).using_db(conn).update(
        status=PendingStatus.released, settled_at=now
    )
    if changed != 1:
        return None
    await PointsAccount.filter(id=account.id).using_db(conn).update(pending=F("pending") - pending.points)
    account.pending -= pending.points
    entry = await _credit(
        conn, account, points=pending.points, kind=pending.kind, ref=pending.ref, reason=pending.reason,
        earned_at=pending.earned_at,
    )
    await PendingPoints.filter(id=pending.id).using_db(conn).update(entry_id=entry.id)
    return entry


async def due_pending_ids(conn: BaseDBAsyncClient, *, limit: int = 500) -> list[int]:
    rows = await PendingPoints.filter(
        status=PendingStatus.pending, release_at__lte=clock.now()
    ).using_db(conn).order_by("release_at").limit(limit).values_list("id", flat=True)
    return list(rows)
