"""Stored value (储值卡): top-ups credit principal and bonus apart; spending takes principal first, then bonus;
a refunded top-up returns only its unused principal (the plan's bonus is forfeited); finance reads the
prepaid liability at any date from the ledger.

Every change locks the customer row first (the lock every room takes first), then changes the account
with a conditional update that keeps both parts at or above zero and appends a ledger entry whose `ref`
is unique, so the account always equals the sum of its entries and an effect applies once.
"""

from __future__ import annotations

from datetime import datetime

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.functions import Sum

from kernel import clock
from kernel.errors import Conflict
from kernel.identity.service import lock_customers
from orders.product_models import StoredValueAccount, StoredValueEntry


class StoredValueShort(Conflict):
    code = "stored_value_insufficient"
    default_message = "The stored-value balance does not cover this amount."


async def _account(conn: BaseDBAsyncClient, customer_id: int) -> StoredValueAccount:
    """The customer's account as the previous holder of the customer lock left it.

    Locking reads after the lock: a plain read sees the snapshot of the transaction's first read, and a caller
    (checkout) has read products and its quote before; the spend would be split from a balance already gone."""
    await lock_customers(conn, {customer_id})
    account = await StoredValueAccount.filter(customer_id=customer_id).select_for_update().using_db(conn).first()
    if account is None:
        account = await StoredValueAccount.create(customer_id=customer_id, updated_at=clock.now(), using_db=conn)
    return account


async def balance(conn: BaseDBAsyncClient, customer_id: int) -> tuple[int, int]:
    """(principal, bonus) in fen."""
    account = await StoredValueAccount.get_or_none(customer_id=customer_id).using_db(conn)
    return (account.principal_fen, account.bonus_fen) if account else (0, 0)


async def _move(conn: BaseDBAsyncClient, customer_id: int, *, principal: int, bonus: int, kind: str, ref: str,
                order_id: int | None, locked: bool = False) -> bool:
    """Apply one ledger entry to the account; False (nothing changed) when `ref` was applied before.
    Raises StoredValueShort when a part would go below zero. `locked`: the caller has just called `_account`."""
    if not locked:
        await _account(conn, customer_id)
    # A plain read: a locking read of a ref that does not exist yet (every new spend's) takes a gap lock on the
    # unique ref index, and two purchases whose new refs share a gap deadlock on their inserts.
    if await StoredValueEntry.filter(ref=ref).using_db(conn).exists():
        return False
    accounts = StoredValueAccount.filter(customer_id=customer_id)
    changed = await accounts.filter(principal_fen__gte=-principal, bonus_fen__gte=-bonus).using_db(conn).update(
        principal_fen=F("principal_fen") + principal, bonus_fen=F("bonus_fen") + bonus, updated_at=clock.now())
    if not changed:
        raise StoredValueShort(field="use_stored_value", required_fen=-(principal + bonus))
    try:
        await StoredValueEntry.create(customer_id=customer_id, kind=kind, principal_delta=principal,
                                      bonus_delta=bonus, ref=ref, order_id=order_id, created_at=clock.now(),
                                      using_db=conn)
    except IntegrityError:
        # The ref was committed after this transaction's snapshot began (the plain read above could not see
        # it): the effect is applied already, so the balance change is taken back in this transaction.
        await accounts.using_db(conn).update(principal_fen=F("principal_fen") - principal,
                                             bonus_fen=F("bonus_fen") - bonus)
        return False
    return True


async def credit_topup(conn: BaseDBAsyncClient, customer_id: int, order_id: int, *, principal: int, bonus: int) -> None:
    await _move(conn, customer_id, principal=principal, bonus=bonus, kind="topup", ref=f"topup:{order_id}",
                order_id=order_id)


def split_spend(principal: int, bonus: int, amount: int) -> tuple[int, int]:
    """The spend order: principal first, then bonus."""
    from_principal = min(principal, amount)
    return from_principal, amount - from_principal


async def spend(conn: BaseDBAsyncClient, customer_id: int, order_id: int, amount: int) -> None:
    account = await _account(conn, customer_id)
    from_principal, from_bonus = split_spend(account.principal_fen, account.bonus_fen, amount)
    await _move(conn, customer_id, principal=-from_principal, bonus=-from_bonus, kind="spend",
                ref=f"spend:{order_id}", order_id=order_id, locked=True)


async def give_back(conn: BaseDBAsyncClient, customer_id: int, order_id: int, amount: int | None, *, kind: str,
                    ref: str) -> int:
    """Return `amount` (None: all that is left) of what the order spent, principal and bonus in the proportion
    spent (cumulative rounding: after everything is back, exactly what was spent is back). Once per `ref`."""
    await _account(conn, customer_id)
    entries = await _order_entries(conn, customer_id, order_id)
    spent = next((e for e in entries if e.kind == "spend"), None)
    if spent is None:
        return 0
    spent_p, spent_b = -spent.principal_delta, -spent.bonus_delta
    back_p = sum(e.principal_delta for e in entries if e.kind in ("release", "refund"))
    back_b = sum(e.bonus_delta for e in entries if e.kind in ("release", "refund"))
    left = spent_p + spent_b - back_p - back_b
    amount = left if amount is None else min(amount, left)
    if amount <= 0:
        return 0
    total_spent = spent_p + spent_b
    bonus_target = spent_b * (back_p + back_b + amount) // total_spent
    bonus_now = bonus_target - back_b
    await _move(conn, customer_id, principal=amount - bonus_now, bonus=bonus_now, kind=kind, ref=ref,
                order_id=order_id)
    return amount


async def unused_topup_principal(conn: BaseDBAsyncClient, customer_id: int, order_id: int) -> int:
    """What a refund of this top-up may return: its principal not yet refunded, at most the principal left.
    A refund the gateway ended unpaid gave its principal back (`refund_failed`), so it is refundable again."""
    entries = await _order_entries(conn, customer_id, order_id)
    topped = sum(e.principal_delta for e in entries if e.kind == "topup")
    refunded = -sum(e.principal_delta for e in entries if e.kind in ("topup_refund", "refund_failed"))
    principal = (await _account(conn, customer_id)).principal_fen
    return max(0, min(principal, topped - refunded))


async def _order_entries(conn: BaseDBAsyncClient, customer_id: int, order_id: int) -> list[StoredValueEntry]:
    # A locking read, under the customer lock: what earlier releases and refunds of the order committed.
    return await StoredValueEntry.filter(order_id=order_id, customer_id=customer_id).select_for_update().using_db(conn)


async def refund_topup(conn: BaseDBAsyncClient, customer_id: int, order_id: int, amount: int, *,
                       out_refund_no: str) -> None:
    """Take the refunded principal out of the balance and forfeit the plan's bonus (on the first refund, as much
    of it as is left; again only after a refund that forfeited it ended unpaid and gave it back)."""
    await _account(conn, customer_id)
    unused = await unused_topup_principal(conn, customer_id, order_id)
    if amount > unused:
        from orders.errors import RefundTooLarge

        raise RefundTooLarge("A top-up refund returns only its unused principal.", field="amount_fen",
                             left_fen=unused)
    await _move(conn, customer_id, principal=-amount, bonus=0, kind="topup_refund",
                ref=f"topup_refund:{out_refund_no}", order_id=order_id)
    entries = await _order_entries(conn, customer_id, order_id)
    topup = next((e for e in entries if e.ref == f"topup:{order_id}"), None)
    standing = -sum(e.bonus_delta for e in entries if e.kind in ("forfeit", "refund_failed"))
    if standing > 0:
        return
    bonus_now = (await _account(conn, customer_id)).bonus_fen
    forfeit = min(bonus_now, topup.bonus_delta if topup else 0)
    if forfeit > 0:
        # Named by the refund (earlier releases named it by the order): one forfeit per refund that takes it.
        await _move(conn, customer_id, principal=0, bonus=-forfeit, kind="forfeit",
                    ref=f"topup_forfeit:{out_refund_no}", order_id=order_id)


async def undo_topup_refund(conn: BaseDBAsyncClient, customer_id: int, order_id: int, *, out_refund_no: str) -> bool:
    """The gateway ended a top-up refund without paying it (closed, abnormal, refused): the principal it took
    out of the balance comes back in one ledger entry of kind `refund_failed` (ref
    `topup_refund_failed:<out_refund_no>`, so once), with the plan's forfeited bonus when no other refund of
    the top-up still stands (the bonus is forfeited by a refund that goes through). False when nothing changed."""
    await _account(conn, customer_id)
    entries = await _order_entries(conn, customer_id, order_id)
    refs = {e.ref for e in entries}
    taken = next((e for e in entries if e.ref == f"topup_refund:{out_refund_no}"), None)
    if taken is None:
        return False
    still_asked = [e for e in entries if e.kind == "topup_refund" and e is not taken
                   and "topup_refund_failed:" + e.ref.removeprefix("topup_refund:") not in refs]
    forfeited = -sum(e.bonus_delta for e in entries if e.kind in ("forfeit", "refund_failed"))
    bonus = 0 if still_asked else max(0, forfeited)
    return await _move(conn, customer_id, principal=-taken.principal_delta, bonus=bonus, kind="refund_failed",
                       ref=f"topup_refund_failed:{out_refund_no}", order_id=order_id, locked=True)


async def redo_topup_refund(conn: BaseDBAsyncClient, customer_id: int, order_id: int, *, out_refund_no: str) -> bool:
    """An ABNORMAL top-up refund that `undo_topup_refund` gave back was paid after all (by hand, at WeChat Pay):
    its principal leaves the balance again (kind `topup_refund`, ref `topup_refund_paid:<out_refund_no>`) and the
    bonus that came back with it is forfeited again (kind `forfeit`, ref `topup_forfeit_paid:<out_refund_no>`),
    each once. What the customer spent in between cannot be taken: each part is taken up to what is left (the
    ledger stays true; the shortfall is logged for finance). False when nothing was given back."""
    account = await _account(conn, customer_id)
    entries = await _order_entries(conn, customer_id, order_id)
    back = next((e for e in entries if e.ref == f"topup_refund_failed:{out_refund_no}"), None)
    if back is None:
        return False
    principal = min(back.principal_delta, account.principal_fen)
    bonus = min(back.bonus_delta, account.bonus_fen)
    if (principal, bonus) != (back.principal_delta, back.bonus_delta):
        import structlog

        structlog.get_logger(__name__).error(
            "orders.topup_refund_paid_after_spent", order_id=order_id, out_refund_no=out_refund_no,
            principal_short_fen=back.principal_delta - principal, bonus_short_fen=back.bonus_delta - bonus)
    moved = await _move(conn, customer_id, principal=-principal, bonus=0, kind="topup_refund",
                        ref=f"topup_refund_paid:{out_refund_no}", order_id=order_id, locked=True)
    if bonus > 0:
        await _move(conn, customer_id, principal=0, bonus=-bonus, kind="forfeit",
                    ref=f"topup_forfeit_paid:{out_refund_no}", order_id=order_id, locked=True)
    return moved


async def entries_of(conn: BaseDBAsyncClient, customer_id: int, *, limit: int = 50) -> list[StoredValueEntry]:
    return await StoredValueEntry.filter(customer_id=customer_id).using_db(conn).order_by("-id").limit(limit)


async def liability(conn: BaseDBAsyncClient, before: datetime) -> tuple[int, int, int]:
    """Prepaid liability (principal, bonus, accounts with a balance) from every entry before `before`."""
    rows = await StoredValueEntry.filter(created_at__lt=before).using_db(conn).annotate(
        p=Sum("principal_delta"), b=Sum("bonus_delta")).values("p", "b")
    row = rows[0] if rows else {}
    holders = await StoredValueEntry.filter(created_at__lt=before).using_db(conn).group_by("customer_id").annotate(
        p=Sum("principal_delta"), b=Sum("bonus_delta")).values("customer_id", "p", "b")
    return int(row.get("p") or 0), int(row.get("b") or 0), sum(1 for h in holders if (h["p"] or 0) + (h["b"] or 0))


async def balance_of(customer_id: int) -> tuple[int, int]:
    """(principal, bonus) read outside any transaction (views, tests)."""
    from tortoise import connections

    return await balance(connections.get("default"), customer_id)
