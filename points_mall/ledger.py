"""The points ledger: earning, spending (earliest-expiring lots first), reversing, pending points and expiry.

Every function takes the caller's connection and never commits. Each starts by locking the customer's
`PointsAccount` row (SELECT ... FOR UPDATE), so all changes to one customer's points are serialised and
the balance, the ledger and the lots move together. A ledger `ref` is unique: repeating an effect finds
the entry it already wrote and changes nothing.

Invariant kept here: account.balance == SUM(ledger.delta) == SUM(lot.remaining) >= 0 for every customer.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F

from kernel import clock
from kernel.errors import ValidationFailed
from kernel.identity.models import Customer
from kernel.identity.service import lock_customers
from points_mall.errors import (
    IdempotencyKeyReused,
    InsufficientPoints,
    OriginalEntryNotFound,
    PointsCustomerNotFound,
)
from points_mall.models import (
    EntryKind,
    PendingPoints,
    PendingStatus,
    PointsAccount,
    PointsLedgerEntry,
    PointsLot,
    PointsLotUse,
    PointsRules,
)
from points_mall.rules import get_rules, lot_expiry

_FAR_FUTURE = datetime.max.replace(tzinfo=None)


async def lock_account(conn: BaseDBAsyncClient, customer_id: int) -> PointsAccount:
    """Lock the customer's points for the rest of the transaction and return the account (created if needed).

    The first lock taken is the customer row's (it always exists, so InnoDB takes a record lock only).
    A locking read of a *missing* account row would take a gap lock shared by every customer without an
    account, and two such transactions inserting their accounts would deadlock; with the customer row
    locked first, the account is looked up plainly, inserted if missing, then locked as an existing row.
    Callers that read other rows to make a decision (limits, counts) call this first, so those reads
    happen after the previous holder of the lock committed.
    """
    if not await lock_customers(conn, {customer_id}):
        raise PointsCustomerNotFound(customer_id=customer_id)
    await ensure_account(conn, customer_id)
    return await PointsAccount.filter(customer_id=customer_id).using_db(conn).select_for_update().get()


async def ensure_account(conn: BaseDBAsyncClient, customer_id: int) -> None:
    """Create the account if it is missing, without locking it (at first login, and by `lock_account`)."""
    if await PointsAccount.filter(customer_id=customer_id).using_db(conn).exists():
        return
    now = clock.now()
    try:
        await PointsAccount.create(customer_id=customer_id, created_at=now, updated_at=now, using_db=conn)
    except IntegrityError:
        pass  # created by a transaction that committed after this one's snapshot


async def _existing(conn: BaseDBAsyncClient, ref: str) -> PointsLedgerEntry | PendingPoints | None:
    entry = await PointsLedgerEntry.get_or_none(ref=ref, using_db=conn)
    if entry is not None:
        return entry
    pending = await PendingPoints.get_or_none(ref=ref, using_db=conn)
    if pending is None:
        return None
    if pending.status == PendingStatus.released and pending.entry_id is not None:  # type: ignore[attr-defined]
        return await PointsLedgerEntry.get(id=pending.entry_id, using_db=conn)  # type: ignore[attr-defined]
    return pending


async def _locked_entry(conn: BaseDBAsyncClient, ref: str) -> PointsLedgerEntry:
    # A locking read sees the row a concurrent transaction just committed (a plain read might not).
    return await PointsLedgerEntry.filter(ref=ref).using_db(conn).select_for_update().get()


def _check_positive(points: int) -> None:
    if not isinstance(points, int) or isinstance(points, bool) or points <= 0:
        raise ValidationFailed("Points must be a positive integer.", field="points")


async def _append(
    conn: BaseDBAsyncClient,
    account: PointsAccount,
    *,
    delta: int,
    kind: EntryKind,
    ref: str,
    reason: str,
    expires_at: datetime | None = None,
    original_ref: str | None = None,
    detail: dict[str, Any] | None = None,
    also: dict[str, Any] | None = None,
) -> PointsLedgerEntry | None:
    """Insert the entry and move the balance with it; None when the ref already exists."""
    now = clock.now()
    try:
        entry = await PointsLedgerEntry.create(
            customer_id=account.customer_id,  # type: ignore[attr-defined]
            delta=delta,
            kind=kind,
            ref=ref,
            reason=reason[:255],
            balance_after=account.balance + delta,
            expires_at=expires_at,
            original_ref=original_ref,
            detail=detail or {},
            occurred_at=now,
            using_db=conn,
        )
    except IntegrityError:
        return None
    updates: dict[str, Any] = {"balance": F("balance") + delta, "updated_at": now, **(also or {})}
    query = PointsAccount.filter(id=account.id)
    if delta < 0:
        # Belt and braces: the row is locked, but the balance may still never go below zero.
        query = query.filter(balance__gte=-delta)
    changed = await query.using_db(conn).update(**updates)
    if changed != 1:
        raise InsufficientPoints(balance=account.balance, required=-delta)
    account.balance += delta
    return entry


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


def _by_expiry(lot: PointsLot) -> tuple[datetime, int]:
    # Earliest expiry first; lots that never expire last.
    expires = lot.expires_at.replace(tzinfo=None) if lot.expires_at else _FAR_FUTURE
    return expires, lot.id


async def _spendable_lots(conn: BaseDBAsyncClient, customer_id: int, now: datetime) -> list[PointsLot]:
    # Locking reads: they see the latest committed lots even if the caller's snapshot is older.
    lots = await PointsLot.filter(customer_id=customer_id, remaining__gt=0).using_db(conn).select_for_update()
    return sorted((lot for lot in lots if lot.expires_at is None or lot.expires_at > now), key=_by_expiry)


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
    lots.sort(key=lambda lot: (lot.entry_id != original.id, *_by_expiry(lot)))  # type: ignore[attr-defined]
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
    uses.sort(key=lambda use: _by_expiry(use.lot), reverse=True)
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


async def expire_customer_lots(conn: BaseDBAsyncClient, customer_id: int) -> list[PointsLedgerEntry]:
    """Write expiry entries for the customer's lots whose time has come (one per expiry moment)."""
    account = await lock_account(conn, customer_id)
    now = clock.now()
    lots = await PointsLot.filter(
        customer_id=customer_id, remaining__gt=0, expires_at__lte=now
    ).using_db(conn).select_for_update().order_by("expires_at", "id")
    groups: dict[datetime, list[PointsLot]] = defaultdict(list)
    for lot in lots:
        groups[lot.expires_at].append(lot)
    entries = []
    for expires_at, group in groups.items():
        total = sum(lot.remaining for lot in group)
        # The lowest lot id makes the ref unique even when given-back points expire at a moment
        # that was already processed once (those are always new lots).
        ref = f"expiry:{customer_id}:{group[0].id}"
        entry = await _append(
            conn, account, delta=-total, kind=EntryKind.expiry, ref=ref,
            reason=f"Points earned before {expires_at.astimezone(clock.clinic_zone()):%Y-%m} expired",
            detail={"expires_at": expires_at.isoformat(), "lots": [lot.id for lot in group]},
        )
        if entry is None:
            continue
        uses = []
        for lot in group:
            changed = await PointsLot.filter(id=lot.id, remaining=lot.remaining).using_db(conn).update(remaining=0)
            if changed != 1:
                raise RuntimeError(f"lot {lot.id} changed under the account lock")
            uses.append(PointsLotUse(entry=entry, lot_id=lot.id, points=lot.remaining))
        await PointsLotUse.bulk_create(uses, using_db=conn)
        entries.append(entry)
    return entries


async def customers_with_expired_lots(conn: BaseDBAsyncClient, *, limit: int = 1000) -> list[int]:
    rows = await PointsLot.filter(remaining__gt=0, expires_at__lte=clock.now()).using_db(conn).distinct().limit(
        limit
    ).values_list("customer_id", flat=True)
    return list(rows)


async def account_summary(conn: BaseDBAsyncClient, customer_id: int) -> PointsAccount:
    """The account without locking it (read-only views); a customer with no account yet has zeros."""
    account = await PointsAccount.get_or_none(customer_id=customer_id, using_db=conn)
    if account is not None:
        return account
    if not await Customer.filter(id=customer_id).using_db(conn).exists():
        raise PointsCustomerNotFound(customer_id=customer_id)
    now = clock.now()
    return PointsAccount(customer_id=customer_id, created_at=now, updated_at=now)


async def expiring_within(conn: BaseDBAsyncClient, customer_id: int, until: datetime) -> int:
    now = clock.now()
    lots = await PointsLot.filter(
        customer_id=customer_id, remaining__gt=0, expires_at__gt=now, expires_at__lte=until
    ).using_db(conn)
    return sum(lot.remaining for lot in lots)


@dataclass
class LockedPoints:
    """A customer's account and spendable lots, read under the customer's lock in this transaction."""

    customer_id: int
    account: PointsAccount
    lots: list[PointsLot]

    @property
    def spendable(self) -> int:
        return sum(lot.remaining for lot in self.lots)


async def lock_points(conn: BaseDBAsyncClient, customer_id: int) -> LockedPoints:
    """`lock_account` plus the spendable lots (locked), for a caller that decides and then spends."""
    account = await lock_account(conn, customer_id)
    return LockedPoints(customer_id, account, await _spendable_lots(conn, customer_id, clock.now()))


async def spendable(conn: BaseDBAsyncClient, customer_id: int) -> int:
    """Points that can be spent now (lots not yet expired); equals the balance once expiry has run."""
    return sum(lot.remaining for lot in await _spendable_lots(conn, customer_id, clock.now()))
