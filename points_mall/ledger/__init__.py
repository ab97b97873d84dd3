"""The points ledger: earning, spending (earliest-expiring lots first), reversing, pending points and expiry.

Every function takes the caller's connection and never commits. Each starts by locking the customer's
`PointsAccount` row, so all changes to one customer's points are serialised and the balance, the ledger
and the lots move together. A ledger `ref` is unique: repeating an effect finds the entry it already wrote
and changes nothing.

Invariant kept here: account.balance == SUM(ledger.delta) == SUM(lot.remaining) >= 0 for every customer.

Rooms: `_accounts` (the lock, the entry append, account reads), `_earning` (credits, pending points),
`_spending` (debits from lots, staff adjustments), `_reversal`, `_expiry`. Callers import from here.
"""

from points_mall.ledger._accounts import (
    LockedPoints,
    account_summary,
    by_expiry,
    ensure_account,
    lock_account,
    lock_points,
    spendable,
)
from points_mall.ledger._earning import add_credit_new_ref, due_pending_ids, earn_points, release_pending
from points_mall.ledger._expiry import customers_with_expired_lots, expire_customer_lots, expiring_within
from points_mall.ledger._reversal import reverse_points
from points_mall.ledger._spending import adjust_points, spend_points

__all__ = [
    "LockedPoints", "account_summary", "add_credit_new_ref", "adjust_points", "by_expiry", "customers_with_expired_lots", "due_pending_ids",
    "earn_points", "ensure_account", "expire_customer_lots", "expiring_within", "lock_account", "lock_points",
    "release_pending", "reverse_points", "spend_points", "spendable",
]
