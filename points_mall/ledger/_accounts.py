"""The account lock every change of a customer's points starts with, the entry append that moves the balance
with the ledger, and the reads of the account and its lots."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F

from kernel import clock
from kernel.errors import ValidationFailed
from kernel.identity.models import Customer
from kernel.identity.service import AccountErased, lock_customers
from points_mall.errors import InsufficientPoints, PointsCustomerNotFound
from points_mall.models import EntryKind, PendingPoints, PendingStatus, PointsAccount, PointsLedgerEntry, PointsLot

_FAR_FUTURE = datetime.max.replace(tzinfo=None)

async def lock_account(conn: BaseDBAsyncClient, customer_id: int, *, active_only: bool = False) -> PointsAccount:
    """Lock the customer's points for the rest of the transaction and return the account (created if needed).

    The first lock taken is the customer row's (it always exists, so InnoDB takes a record lock only).
    A locking read of a *missing* account row would take a gap lock shared by every customer without an
    account, and two such transactions inserting their accounts would deadlock; with the customer row
    locked first, the account is looked up plainly, inserted if missing, then locked as an existing row.
    Callers that read other rows to make a decision (limits, counts) call this first, so those reads
    happen after the previous holder of the lock committed. With `active_only` an erased customer is
    refused (`AccountErased`): a customer's own request whose guard left that check to its work.
    """
    if not await lock_customers(conn, {customer_id}, active_only=active_only):
        raise AccountErased() if active_only else PointsCustomerNotFound(customer_id=customer_id)
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


def by_expiry(lot: PointsLot) -> tuple[datetime, int]:
    # Earliest expiry first; lots that never expire last.
    expires = lot.expires_at.replace(tzinfo=None) if lot.expires_at else _FAR_FUTURE
    return expires, lot.id


async def _spendable_lots(conn: BaseDBAsyncClient, customer_id: int, now: datetime) -> list[PointsLot]:
    # Locking reads: they see the latest committed lots even if the caller's snapshot is older.
    lots = await PointsLot.filter(customer_id=customer_id, remaining__gt=0).using_db(conn).select_for_update()
    return sorted((lot for lot in lots if lot.expires_at is None or lot.expires_at > now), key=by_expiry)


async def account_summary(conn: BaseDBAsyncClient, customer_id: int) -> PointsAccount:
    """The account without locking it (read-only views); a customer with no account yet has zeros."""
    account = await PointsAccount.get_or_none(customer_id=customer_id, using_db=conn)
    if account is not None:
        return account
    if not await Customer.filter(id=customer_id).using_db(conn).exists():
        raise PointsCustomerNotFound(customer_id=customer_id)
    now = clock.now()
    return PointsAccount(customer_id=customer_id, created_at=now, updated_at=now)


@dataclass
class LockedPoints:
    """A customer's account and spendable lots, read under the customer's lock in this transaction."""

    customer_id: int
    account: PointsAccount
    lots: list[PointsLot]

    @property
    def spendable(self) -> int:
        return sum(lot.remaining for lot in self.lots)


async def lock_points(conn: BaseDBAsyncClient, customer_id: int, *, active_only: bool = False) -> LockedPoints:
    """`lock_account` plus the spendable lots (locked), for a caller that decides and then spends."""
    account = await lock_account(conn, customer_id, active_only=active_only)
    return LockedPoints(customer_id, account, await _spendable_lots(conn, customer_id, clock.now()))


async def spendable(conn: BaseDBAsyncClient, customer_id: int) -> int:
    """Points that can be spent now (lots not yet expired); equals the balance once expiry has run."""
    return sum(lot.remaining for lot in await _spendable_lots(conn, customer_id, clock.now()))
