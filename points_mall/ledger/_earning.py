"""Earning points: a credit becomes a ledger entry and a lot (or pending points held until their release)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F

from kernel import clock
from kernel.batch import Batch
from kernel.sql import utc
from points_mall.ledger._accounts import _append, _check_positive, _existing, _locked_entry, lock_account
from points_mall.models import (
    EntryKind,
    PendingPoints,
    PendingStatus,
    PointsAccount,
    PointsLedgerEntry,
    PointsLot,
    PointsRules,
)
from points_mall.rules import get_rules, lot_expiry

# One UPDATE both locks the account row (an existing row: a record lock) and moves the balance;
# LAST_INSERT_ID(expr) hands the new balance back in the statement's OK packet (the driver's lastrowid),
# so no SELECT ... FOR UPDATE before it and no read after it. The statements after it in the batch take the
# balance from a session variable, set only when the UPDATE changed the row (ROW_COUNT): with no account
# (or a make-up count that moved) LAST_INSERT_ID() would still hold the id of an earlier insert, and the
# entry and the lot are then not written at all.
_CREDIT_ACCOUNT = (
    "UPDATE points_account SET balance = LAST_INSERT_ID(balance + %s), lifetime_earned = lifetime_earned + %s,"
    " updated_at = %s WHERE customer_id = %s"
)
_KEEP_BALANCE = "SET @batch_balance = IF(ROW_COUNT() > 0, LAST_INSERT_ID(), 0)"
_INSERT_ENTRY = (
    "INSERT INTO points_ledger_entry (customer_id, delta, kind, ref, reason, balance_after, expires_at,"
    " original_ref, detail, occurred_at) SELECT %s, %s, %s, %s, %s, @batch_balance, %s, NULL, '{}', %s"
    " FROM DUAL WHERE @batch_balance > 0"
)
# LAST_INSERT_ID() here is the entry's id: the INSERT before it wrote exactly one row when this one writes.
_INSERT_LOT = (
    "INSERT INTO points_lot (customer_id, entry_id, points, remaining, earned_at, expires_at)"
    " SELECT %s, LAST_INSERT_ID(), %s, %s, %s, %s FROM DUAL WHERE @batch_balance > 0"
)


def add_credit_new_ref(
    batch: Batch,
    *,
    customer_id: int,
    points: int,
    kind: EntryKind,
    ref: str,
    reason: str,
    expires_at: datetime | None,
    checkin_makeups: int | None = None,
) -> Callable[[], int | None]:
    """Queue a credit of `points` in `batch` (MySQL/MariaDB), for a ref derived from a unique row the caller
    inserts before it in this transaction (a check-in's `(customer, day)`): no entry or pending row can
    hold the ref yet, and its unique key still guards. The caller has seen the customer's account exist in
    this transaction (an UPDATE of a missing row would take a gap lock; `earn_points` creates a missing
    account under the customer's lock). Returns the function that, once the batch was sent, gives the
    balance after the credit, or None when nothing was written and the general path (`earn_points`) must
    do it (no account after all).

    Three statements of parameterised SQL in the caller's batch instead of the ORM's five round trips (the
    customer lock, the account's existence, the account lock, then the same writes): the hot path of the
    morning check-in rush. The account row lock serialises it with every other change of this customer's
    points exactly as `lock_account` does (they all lock this row); it skips the customer row lock,
    which `lock_account` takes first only so that a *missing* account is created without a gap lock.

    With `checkin_makeups` (the account's count the caller read) the update also requires the count unchanged:
    after a make-up check-in nothing is written and None sends the caller to its general path, which sees why.
    """
    _check_positive(points)
    now = utc(clock.now())
    if checkin_makeups is None:
        credit = batch.add(_CREDIT_ACCOUNT, [points, points, now, customer_id])
    else:
        credit = batch.add(_CREDIT_ACCOUNT + " AND checkin_makeups = %s",
                           [points, points, now, customer_id, checkin_makeups])
    batch.add(_KEEP_BALANCE)
    batch.add(_INSERT_ENTRY, [customer_id, points, kind.value, ref, reason[:255], utc(expires_at), now])
    batch.add(_INSERT_LOT, [customer_id, points, points, now, utc(expires_at)])
    return lambda: credit.lastrowid if credit.rowcount > 0 else None


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
