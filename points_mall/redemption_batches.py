"""Mall redemptions served in batches: the concurrent requests for one item share one transaction.

A hot item (a flash gift everyone taps at 10:00) makes every redemption queue for the item's row lock and
pay its own commit, so one transaction per request tops out far below what the row itself allows. Here the
requests for one item that arrive while its batches are in flight (up to IN_FLIGHT per item and process)
wait and are served together by the next batch, in one transaction that

1. locks every customer of the batch in id order (the order every room uses, so batches and single
   requests queue, never deadlock), then reads their accounts, lots and earlier redemptions once;
2. decides each request in arrival order with `mall.why_not` (the single path's rules and precedence),
   on the item as the batch has left it so far, so a refusal is the one that request would get alone;
3. writes the accepted redemptions (the rows the single path writes: redemption, ledger debit from the
   earliest-expiring lots, lot uses, vouchers) with one multi-row statement per table, then takes the
   stock for all of them with one conditional UPDATE, last, so the hot row is locked only from there to
   the commit;
4. commits; only then does any request of the batch get its answer (201, 200 for a known
   Idempotency-Key, or its own refusal).

A batch holds one request per customer: a customer's second request (another key, or the same key sent
twice) waits for the next batch and is decided on what the first one committed, exactly as it would
queue on the customer's lock. If the stock UPDATE finds the row changed under the batch (another process
took units after the batch read it), the batch is rolled back and run again with the item locked first.
If a batch fails otherwise, nothing of it was applied (one transaction): on an outage (connection or
server gone) every waiter gets that error (a 503; its retry with the same key applies once), on anything
else each request runs again alone through `mall.redeem`, so one poisoned request cannot fail its
neighbours. Every waiter gets an answer. See docs/reliability.md ("Hot items: batched redemption").
"""

from __future__ import annotations

import asyncio
import weakref
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from collections.abc import Iterable
from typing import Any

import structlog
from prometheus_client import Histogram
from pymysql.err import InterfaceError as DriverInterfaceError
from pymysql.err import OperationalError as DriverOperationalError
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import DBConnectionError, OperationalError
from tortoise.expressions import Case, F, Q, When
from tortoise.functions import Sum

from kernel import clock
from kernel.batch import Batch, Subquery, from_packed, packed_model, unpacked
from kernel.db import mysql_errno, run_in_transaction
from kernel.errors import DomainError, ValidationFailed
from kernel.identity.service import AccountErased, customer_lock_statement, lock_customers
from kernel.rows import RowInsert
from kernel.sql import in_list, utc
from points_mall import mall
from points_mall.errors import IdempotencyKeyReused, InsufficientPoints, ItemNotFound
from points_mall.ledger import LockedPoints, by_expiry, ensure_account
from points_mall.models import (
    EntryKind,
    MallItem,
    MallRedemption,
    MemberTier,
    PointsAccount,
    PointsLedgerEntry,
    PointsLot,
    PointsLotUse,
    Voucher,
)
from points_mall.rules import month_bounds
from points_mall.vouchers import new_voucher_code

log = structlog.get_logger(__name__)

# Enough to amortise a commit over many requests; small enough that one batch's statements stay short.
MAX_BATCH = 64

# Batches of one item in flight at once in a process; the next batch forms from the requests that arrived
# while it ran. While a batch took 18 round trips, a second one in flight doubled throughput (its reads and
# writes overlapped the first one's commit). Since a batch takes three (kernel.batch), a second server
# started as soon as one request arrived: batches held 1.7-2.1 requests and cost 1.28-1.72 ms of server CPU
# per request; with one in flight they hold 4.9-6.3 and cost 0.87-0.90 ms (`python -m bench.batch_sizes`,
# docs/benchmarks.md round 6). More concurrency for one item comes from more processes.
IN_FLIGHT = 1

# On /metrics (this process's registry): how many requests each committed batch answered.
BATCH_SIZE = Histogram("clinic_mall_redemption_batch_size", "Redemption requests decided by one committed batch",
                       buckets=(1, 2, 4, 8, 16, 32, 64))


@dataclass(frozen=True)
class Redeemed:
    """What a redemption request gets back: the redemption, its vouchers, and whether it was new."""

    redemption: MallRedemption
    vouchers: list[Voucher]
    created: bool


@dataclass
class _Ask:
    customer_id: int
    item_id: int
    quantity: int
    idempotency_key: str
    answer: asyncio.Future[Redeemed]


@dataclass
class _Lane:
    """One item's requests waiting in this process, and how many batches of them are in flight."""

    waiting: list[_Ask] = field(default_factory=list)
    servers: int = 0


# Per event loop: a lane holds futures of its loop (tests run one loop per test, a server one per process).
_LANES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, _Lane]] = weakref.WeakKeyDictionary()
# The event loop keeps only weak references to tasks: a lane's server must not be collected mid-batch.
_SERVERS: set[asyncio.Task] = set()


class _StockMoved(Exception):
    """The stock UPDATE found fewer units than the batch read: run the batch again with the item locked."""


async def redeem(*, customer_id: int, item_id: int, quantity: int, idempotency_key: str) -> Redeemed:
    """Redeem as `mall.redeem` does, sharing the transaction with concurrent requests for the same item.

    Returns only after the transaction that decided this request committed; raises this request's own
    refusal (the error `mall.redeem` would raise for it).
    """
    if quantity < 1:
        raise ValidationFailed("quantity must be at least 1.", field="quantity")
    loop = asyncio.get_running_loop()
    lane = _LANES.setdefault(loop, {}).setdefault(item_id, _Lane())
    ask = _Ask(customer_id, item_id, quantity, idempotency_key, loop.create_future())
    lane.waiting.append(ask)
    if lane.servers < IN_FLIGHT:
        lane.servers += 1
        server = loop.create_task(_serve_lane(item_id, lane))
        _SERVERS.add(server)
        server.add_done_callback(_SERVERS.discard)
    # A client that goes away does not cancel the batch: what it decided commits, and a retry with the
    # same Idempotency-Key finds it.
    return await asyncio.shield(ask.answer)


def _next_batch(lane: _Lane) -> list[_Ask]:
    """Up to MAX_BATCH waiting requests in arrival order, one per customer; the others keep waiting."""
    batch: list[_Ask] = []
    customers: set[int] = set()
    left: list[_Ask] = []
    for ask in lane.waiting:
        if len(batch) < MAX_BATCH and ask.customer_id not in customers:
            batch.append(ask)
            customers.add(ask.customer_id)
        else:
            left.append(ask)
    lane.waiting = left
    return batch


async def _serve_lane(item_id: int, lane: _Lane) -> None:
    # Up to IN_FLIGHT batches per item and process; the next one forms while it runs.
    batch: list[_Ask] = []
    try:
        while lane.waiting:
            # One pass of the event loop first: the requests it has ready reach the lane and join this batch.
            await asyncio.sleep(0)
            batch = _next_batch(lane)
            await _serve(item_id, batch)
    except BaseException:
        # Cancelled (the server shutting down): the batch's transaction rolled back, so its waiters and the
        # ones still queued are told now rather than left waiting; a retry with the same key applies once.
        last_server = lane.servers == 1
        for ask in [*batch, *(lane.waiting if last_server else [])]:
            if not ask.answer.done():
                ask.answer.cancel()
        if last_server:
            lane.waiting = []
        raise
    finally:
        lane.servers -= 1


async def _serve(item_id: int, batch: list[_Ask]) -> None:
    try:
        try:
            outcomes = await run_in_transaction(lambda conn: _redeem_batch(conn, item_id, batch, item_locked=False))
        except _StockMoved:
            outcomes = await run_in_transaction(lambda conn: _redeem_batch(conn, item_id, batch, item_locked=True))
    except Exception as exc:  # noqa: BLE001 -- nothing of the batch was applied (one transaction)
        log.warning("mall.batch_failed", item_id=item_id, size=len(batch), error=type(exc).__name__)
        if len(batch) == 1 or _is_outage(exc):
            # Nothing to isolate, or the database itself is gone: each waiter gets the error now (a 503 for
            # an outage) and its retry with the same Idempotency-Key is applied once.
            for ask in batch:
                _answer(ask, exc)
        else:
            # Something in one request (a bug, a value the database refuses) failed the batch: each runs
            # again alone, so only the request that causes it fails.
            for ask in batch:
                await _serve_alone(ask)
        return
    BATCH_SIZE.observe(len(batch))
    for ask, outcome in zip(batch, outcomes):
        _answer(ask, outcome)


async def _serve_alone(ask: _Ask) -> None:
    async def work(conn: BaseDBAsyncClient) -> Redeemed:
        redemption, created = await mall.redeem(
            conn, customer_id=ask.customer_id, item_id=ask.item_id, quantity=ask.quantity,
            idempotency_key=ask.idempotency_key,
        )
        return Redeemed(redemption, (await _vouchers_of(conn, [redemption.id]))[redemption.id], created)

    try:
        outcome: Redeemed | BaseException = await run_in_transaction(work)
    except Exception as exc:  # noqa: BLE001 -- this request's own failure, answered to it alone
        outcome = exc
    _answer(ask, outcome)


# MySQL client errors meaning the connection or the server went away (not something in the request).
_GONE_ERRNOS = {1053, 1927, 2003, 2006, 2013}


def _is_outage(exc: BaseException) -> bool:
    if isinstance(exc, (DBConnectionError, DriverInterfaceError, ConnectionError, OSError)):
        return True
    return isinstance(exc, (OperationalError, DriverOperationalError)) and mysql_errno(exc) in _GONE_ERRNOS


def _answer(ask: _Ask, outcome: Redeemed | BaseException) -> None:
    if ask.answer.done():
        return
    if isinstance(outcome, BaseException):
        ask.answer.set_exception(outcome)
    else:
        ask.answer.set_result(outcome)


async def _vouchers_of(conn: BaseDBAsyncClient, redemption_ids: list[int]) -> dict[int, list[Voucher]]:
    found: dict[int, list[Voucher]] = {i: [] for i in redemption_ids}
    if redemption_ids:
        rows = await Voucher.filter(source_type=mall.MALL_SOURCE, source_id__in=[str(i) for i in redemption_ids]
                                    ).using_db(conn).order_by("seq")
        for voucher in rows:
            found[int(voucher.source_id)].append(voucher)
    return found


async def _locked_points(conn: BaseDBAsyncClient, customer_ids: list[int], now: datetime) -> dict[int, LockedPoints]:
    """`ledger.lock_points` for many customers at once (their customer rows are already locked)."""
    have = set(await PointsAccount.filter(customer_id__in=customer_ids).using_db(conn).values_list(
        "customer_id", flat=True))
    for customer_id in customer_ids:
        if customer_id not in have:
            await ensure_account(conn, customer_id)
    accounts = await PointsAccount.filter(customer_id__in=customer_ids).using_db(conn).order_by(
        "customer_id").select_for_update()
    lots = await PointsLot.filter(customer_id__in=customer_ids, remaining__gt=0).using_db(conn).select_for_update()
    return _points_of(accounts, lots, now)


def _points_of(accounts: list[PointsAccount], lots: list[PointsLot], now: datetime) -> dict[int, LockedPoints]:
    """Each account with its spendable lots (not expired at `now`), earliest expiry first."""
    spendable: dict[int, list[PointsLot]] = defaultdict(list)
    for lot in lots:
        if lot.expires_at is None or lot.expires_at > now:
            spendable[lot.customer_id].append(lot)  # type: ignore[attr-defined]
    return {
        account.customer_id: LockedPoints(  # type: ignore[attr-defined]
            account.customer_id, account, sorted(spendable[account.customer_id], key=by_expiry)  # type: ignore[attr-defined]
        )
        for account in accounts
    }


async def _holdings(
    conn: BaseDBAsyncClient, item: MallItem, customer_ids: list[int]
) -> tuple[dict[int, int], dict[int, int]]:
    """Units of the item each customer holds (all time, and this month), as `mall._usage`; only if limited."""
    if item.limit_per_customer is None and item.limit_per_month is None:
        return {}, {}
    start, end = month_bounds(clock.local_today())

    async def held(**extra: Any) -> dict[int, int]:
        rows = await MallRedemption.filter(customer_id__in=customer_ids, item_id=item.id, **extra).using_db(
            conn
        ).annotate(q=Sum("quantity"), c=Sum("cancelled_quantity")).group_by("customer_id").values_list(
            "customer_id", "q", "c")
        return {customer_id: int(q or 0) - int(c or 0) for customer_id, q, c in rows}

    return await held(), await held(created_at__gte=start, created_at__lt=end)


async def _tier_levels(conn: BaseDBAsyncClient, item: MallItem, points: dict[int, LockedPoints]) -> dict[int, int]:
    """Each customer's active tier level, as `mall._tier_level`; read only if the item requires a tier."""
    if item.min_tier_level is None:
        return {}
    tier_of_customer = {c: p.account.tier_id for c, p in points.items() if p.account.tier_id is not None}  # type: ignore[attr-defined]
    tiers = {t.id: t for t in await MemberTier.filter(id__in=set(tier_of_customer.values())).using_db(conn)}
    return {c: tiers[t].level for c, t in tier_of_customer.items() if t in tiers and tiers[t].is_active}


_Read = tuple[set[int], dict[int, LockedPoints], list[MallRedemption], MallItem | None]


async def _read_one_by_one(
    conn: BaseDBAsyncClient, item_id: int, batch: list[_Ask], now: datetime, item_locked: bool
) -> _Read:
    """The batch's reads (the embedded stack): the customers locked first, so what is read after sees the
    latest commits; only customers not erased (the route's guard leaves that check to this lock, as
    `mall.redeem`'s does); their points, the redemptions their Idempotency-Keys already made, the item."""
    found = await lock_customers(conn, {ask.customer_id for ask in batch}, active_only=True)
    customer_ids = sorted(found)
    points = await _locked_points(conn, customer_ids, now)
    keys = {ask.idempotency_key for ask in batch if ask.customer_id in found}
    earlier = await MallRedemption.filter(
        customer_id__in=customer_ids, idempotency_key__in=keys).using_db(conn) if keys else []
    query = MallItem.filter(id=item_id).using_db(conn)
    return found, points, earlier, await (query.select_for_update() if item_locked else query).first()


async def _read_in_one_round_trip(
    conn: BaseDBAsyncClient, item_id: int, batch: list[_Ask], now: datetime, item_locked: bool
) -> _Read:
    """`_read_one_by_one` as one batch of statements (MySQL/MariaDB), in the same order: the customer locks,
    the accounts and their lots (locking reads), the earlier redemptions of the keys, the item. A customer
    without a points account yet (created here under the customer's lock, as `ensure_account` does) sends
    the batch's points to the general read. Seven ORM queries per batch before, each built and hydrated
    by the ORM in more server CPU than its round trip."""
    asked = sorted({ask.customer_id for ask in batch})
    keys = sorted({ask.idempotency_key for ask in batch})
    reads = Batch(conn)
    locked = reads.add(*customer_lock_statement(set(asked), active_only=True))
    # Each row as one JSON column (kernel.batch.packed_model): the same rows read and locked as `SELECT *`,
    # without the driver reading 60 column descriptions a batch (about 5 µs each).
    accounts = reads.add(packed_model(PointsAccount) + f" FROM points_account WHERE customer_id IN {in_list(asked)}"
                         " ORDER BY customer_id FOR UPDATE", asked)
    lots = reads.add(packed_model(PointsLot) + f" FROM points_lot WHERE customer_id IN {in_list(asked)}"
                     " AND remaining > 0 FOR UPDATE", asked)
    earlier = reads.add(packed_model(MallRedemption) + f" FROM mall_redemption WHERE customer_id IN {in_list(asked)}"
                        f" AND idempotency_key IN {in_list(keys)}", [*asked, *keys])
    item = reads.add(packed_model(MallItem) + " FROM mall_item WHERE id = %s" + (" FOR UPDATE" if item_locked else ""),
                     [item_id])
    await reads.send()
    found = {row["id"] for row in locked.rows}
    account_rows = [from_packed(PointsAccount, unpacked(row)) for row in accounts.rows]
    with_account = {account.customer_id for account in account_rows}  # type: ignore[attr-defined]
    if found - with_account:
        points = await _locked_points(conn, sorted(found), now)
    else:
        points = _points_of([a for a in account_rows if a.customer_id in found],  # type: ignore[attr-defined]
                            [from_packed(PointsLot, unpacked(row)) for row in lots.rows], now)
    earlier_rows = [r for r in (from_packed(MallRedemption, unpacked(row)) for row in earlier.rows)
                    if r.customer_id in found]  # type: ignore[attr-defined]
    return found, points, earlier_rows, from_packed(MallItem, unpacked(item.rows[0])) if item.rows else None


async def _redeem_batch(
    conn: BaseDBAsyncClient, item_id: int, batch: list[_Ask], *, item_locked: bool
) -> list[Redeemed | DomainError]:
    """Decide and write every request of the batch in the caller's transaction; one outcome per request."""
    now = clock.now()
    outcomes: list[Redeemed | DomainError | None] = [None] * len(batch)
    # First: the reads below see the latest commits. Only customers not erased (the route's guard leaves
    # that check to this lock, as `mall.redeem`'s does).
    if conn.capabilities.dialect == "mysql":
        found, points, earlier_rows, item = await _read_in_one_round_trip(conn, item_id, batch, now, item_locked)
    else:
        found, points, earlier_rows, item = await _read_one_by_one(conn, item_id, batch, now, item_locked)
    for i, ask in enumerate(batch):
        if ask.customer_id not in found:
            outcomes[i] = AccountErased()
    customer_ids = sorted(found)
    earlier = {(r.customer_id, r.idempotency_key): r for r in earlier_rows}  # type: ignore[attr-defined]
    held_total, held_month = await _holdings(conn, item, customer_ids) if item is not None else ({}, {})
    tier_levels = await _tier_levels(conn, item, points) if item is not None else {}

    accepted: list[int] = []
    replayed: list[int] = []
    for i, ask in enumerate(batch):
        if outcomes[i] is not None:
            continue
        existing = earlier.get((ask.customer_id, ask.idempotency_key))
        if existing is not None:
            if existing.item_id != ask.item_id or existing.quantity != ask.quantity:  # type: ignore[attr-defined]
                outcomes[i] = IdempotencyKeyReused(field="Idempotency-Key", redemption_id=existing.id)
            else:
                replayed.append(i)
            continue
        if item is None:
            outcomes[i] = ItemNotFound()
            continue
        reasons = mall.why_not(
            item, now=now, points=points[ask.customer_id].spendable, tier_level=tier_levels.get(ask.customer_id),
            held_total=held_total.get(ask.customer_id, 0), held_month=held_month.get(ask.customer_id, 0),
            quantity=ask.quantity,
        )
        refusal = mall.refusal_of(item, reasons)
        if refusal is not None:
            outcomes[i] = refusal
            continue
        item.stock_reserved += ask.quantity  # what the next request of the batch sees (saved below, once)
        accepted.append(i)

    if replayed:
        vouchers = await _vouchers_of(conn, [earlier[(batch[i].customer_id, batch[i].idempotency_key)].id
                                             for i in replayed])
        for i in replayed:
            existing = earlier[(batch[i].customer_id, batch[i].idempotency_key)]
            outcomes[i] = Redeemed(existing, vouchers[existing.id], created=False)

    if accepted:
        assert item is not None
        asks = [batch[i] for i in accepted]
        for i, redeemed in zip(accepted, await _write_all(conn, item, asks, points, now, item_locked=item_locked)):
            outcomes[i] = redeemed
    return outcomes  # type: ignore[return-value]


async def _write_all(
    conn: BaseDBAsyncClient, item: MallItem, asks: list[_Ask], points: dict[int, LockedPoints], now: datetime,
    *, item_locked: bool,
) -> list[Redeemed]:
    """The single path's writes (redemption, ledger debit from the earliest-expiring lots, vouchers) for
    every accepted request at once, and the batch's one statement on the hot row, the item's stock: one
    multi-row statement per table instead of seven per request, all of them in one round trip on
    MySQL/MariaDB (`_write_in_one_round_trip`).

    Rows and values are those `mall.redeem` writes through `spend_points` and `issue_vouchers` (the
    batch holds one request per customer, so no ref or voucher source can exist yet; their unique keys
    still guard). Each UPDATE carries its per-row condition and must change every row it names.
    """
    valid_until = mall.voucher_valid_until(item)
    branch_ids = sorted(set(item.branch_ids or []))
    redemptions: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    debits: dict[int, int] = {}  # account id -> points
    takes: dict[int, int] = {}  # lot id -> points
    uses: list[tuple[str, int, int]] = []  # (ledger ref, lot id, points)
    for ask in asks:
        price = item.points_price * ask.quantity
        ledger_ref = f"mall:{ask.customer_id}:{ask.idempotency_key}"
        redemptions.append(dict(
            customer_id=ask.customer_id, item_id=item.id, idempotency_key=ask.idempotency_key, quantity=ask.quantity,
            unit_points=item.points_price, points_spent=price, item_title=item.title, item_kind=item.kind,
            ledger_ref=ledger_ref, created_at=now,
        ))
        locked = points[ask.customer_id]
        if locked.account.balance < price:  # the ledger's guard; cannot happen while balance == lots
            raise InsufficientPoints(balance=locked.account.balance, required=price)
        entries.append(dict(
            customer_id=ask.customer_id, delta=-price, kind=EntryKind.redemption, ref=ledger_ref,
            reason=f"Mall: {item.title} x{ask.quantity}"[:255], balance_after=locked.account.balance - price,
            detail={}, occurred_at=now,
        ))
        debits[locked.account.id] = price
        locked.account.balance -= price
        left = price
        for lot in locked.lots:  # earliest expiry first, as `ledger._take_from_lots`
            if left == 0:
                break
            take = min(lot.remaining, left)
            if take:
                takes[lot.id] = take
                uses.append((ledger_ref, lot.id, take))
                lot.remaining -= take
                left -= take
        if left:
            raise InsufficientPoints(required=price)

    vouchers = [
        dict(code=new_voucher_code(), customer_id=ask.customer_id, source_type=mall.MALL_SOURCE, seq=seq,
             title=item.title[:128], valid_until=valid_until, branch_ids=branch_ids, service_id=item.service_id,
             issued_at=now)
        for ask in asks for seq in range(1, ask.quantity + 1)
    ]
    units = sum(ask.quantity for ask in asks)
    if conn.capabilities.dialect == "mysql":
        return await _write_in_one_round_trip(conn, item, asks, redemptions, entries, debits, takes, uses, vouchers,
                                              units=units, item_locked=item_locked, now=now)
    # The embedded stack (SQLite): statement by statement through the ORM.
    redemptions = await _REDEMPTION_ROWS.insert_many(conn, redemptions)
    await _LEDGER_ROWS.insert_many(conn, entries)
    debited = await PointsAccount.filter(
        _any_of(Q(id=account_id, balance__gte=price) for account_id, price in debits.items())
    ).using_db(conn).update(balance=Case(*(When(id=account_id, then=F("balance") - price)
                                           for account_id, price in debits.items()), default=F("balance")),
                            updated_at=now)
    taken = await PointsLot.filter(
        _any_of(Q(id=lot_id, remaining__gte=take) for lot_id, take in takes.items())
    ).using_db(conn).update(remaining=Case(*(When(id=lot_id, then=F("remaining") - take)
                                             for lot_id, take in takes.items()), default=F("remaining")))
    _check_debits(debited, len(debits), taken, len(takes))
    refs = [e["ref"] for e in entries]
    entry_ids = dict(await PointsLedgerEntry.filter(ref__in=refs).using_db(conn).values_list("ref", "id"))
    await _LOT_USE_ROWS.insert_many(conn, [dict(entry_id=entry_ids[ref], lot_id=lot_id, points=take)
                                           for ref, lot_id, take in uses])
    rows = await MallRedemption.filter(
        item_id=item.id, customer_id__in=[a.customer_id for a in asks],
        idempotency_key__in=[a.idempotency_key for a in asks],
    ).using_db(conn).values("customer_id", "idempotency_key", "id")
    redemption_ids = {(row["customer_id"], row["idempotency_key"]): row["id"] for row in rows}
    written = [_REDEMPTION_ROWS.instance(redemption_ids[(r["customer_id"], r["idempotency_key"])], r)
               for r in redemptions]
    by_customer = {r.customer_id: str(r.id) for r in written}  # type: ignore[attr-defined]
    for values in vouchers:  # one request per customer in a batch
        values["source_id"] = by_customer[values["customer_id"]]
    stored = await _VOUCHER_ROWS.insert_many(conn, vouchers)
    codes = [v["code"] for v in stored]
    voucher_ids = dict(await Voucher.filter(code__in=codes).using_db(conn).values_list("code", "id"))
    taken_stock = await MallItem.filter(id=item.id, stock_reserved__lte=F("stock_total") - units).using_db(
        conn).update(stock_reserved=F("stock_reserved") + units)
    _check_stock(taken_stock, item.id, item_locked)
    return _answers(written, stored, voucher_ids)


def _check_debits(debited: int, accounts: int, taken: int, lots: int) -> None:
    if debited != accounts or taken != lots:  # cannot happen under the locks; refuse rather than guess
        raise RuntimeError(f"batch debit changed {debited}/{accounts} accounts, {taken}/{lots} lots")


def _check_stock(taken: int, item_id: int, item_locked: bool) -> None:
    # The batch's one statement on the hot row is conditional, so the stock never goes below zero even if
    # another process took units since the batch read the item.
    if taken != 1:
        if item_locked:  # cannot happen while the row is locked; refuse rather than guess
            raise RuntimeError(f"mall item {item_id}: stock update failed under lock")
        raise _StockMoved()


def _answers(written: list[MallRedemption], vouchers: list[dict[str, Any]], voucher_ids: dict[str, int]) -> list[Redeemed]:
    """Each redemption with its vouchers in seq order as written, built from the values written and the ids
    read by their unique codes, not read back."""
    issued: dict[str, list[Voucher]] = defaultdict(list)
    for values in vouchers:
        issued[values["source_id"]].append(_VOUCHER_ROWS.instance(voucher_ids[values["code"]], values))
    return [Redeemed(r, issued[str(r.id)], created=True) for r in written]


_ENTRY_ID_BY_REF = "SELECT id FROM points_ledger_entry WHERE ref = %s"
_REDEMPTION_ID_AS_TEXT = "SELECT CAST(id AS CHAR) FROM mall_redemption WHERE customer_id = %s AND idempotency_key = %s"


async def _write_in_one_round_trip(
    conn: BaseDBAsyncClient, item: MallItem, asks: list[_Ask], redemptions: list[dict[str, Any]],
    entries: list[dict[str, Any]], debits: dict[int, int], takes: dict[int, int], uses: list[tuple[str, int, int]],
    vouchers: list[dict[str, Any]], *, units: int, item_locked: bool, now: datetime,
) -> list[Redeemed]:
    """Every write of the batch and the reads of the ids it generated, as one batch of statements
    (`kernel.batch`): redemptions, ledger entries, the accounts' and lots' debits, the lot uses (each
    finding its entry by the entry's unique ref), the vouchers (each finding its redemption by the
    customer's Idempotency-Key), the redemptions' and vouchers' ids, then the item's stock. Ten round trips
    per batch before; the checks on what the UPDATEs changed are made once it was answered, and any of them
    failing rolls all of it back."""
    batch = Batch(conn)
    redemptions = _REDEMPTION_ROWS.add_many(batch, redemptions)
    _LEDGER_ROWS.add_many(batch, entries)
    debited = batch.add(*_take_from_each("points_account", "balance", debits, updated_at=utc(now)))
    taken = batch.add(*_take_from_each("points_lot", "remaining", takes))
    _LOT_USE_ROWS.add_many(batch, [dict(entry_id=Subquery(_ENTRY_ID_BY_REF, [ref]), lot_id=lot_id, points=take)
                                   for ref, lot_id, take in uses])
    keys = {ask.customer_id: ask.idempotency_key for ask in asks}
    vouchers = _VOUCHER_ROWS.add_many(batch, [
        {**values, "source_id": Subquery(_REDEMPTION_ID_AS_TEXT, [values["customer_id"], keys[values["customer_id"]]])}
        for values in vouchers])
    customers, idempotency_keys = list(keys), list(keys.values())
    redemption_ids = batch.add(
        "SELECT customer_id, idempotency_key, id FROM mall_redemption"
        f" WHERE item_id = %s AND customer_id IN {in_list(customers)} AND idempotency_key IN {in_list(idempotency_keys)}",
        [item.id, *customers, *idempotency_keys])
    codes = [v["code"] for v in vouchers]
    voucher_ids = batch.add(f"SELECT code, id FROM voucher WHERE code IN {in_list(codes)}", codes)
    stock = batch.add("UPDATE mall_item SET stock_reserved = stock_reserved + %s"
                      " WHERE id = %s AND stock_reserved <= stock_total - %s", [units, item.id, units])
    await batch.send()
    _check_debits(debited.rowcount, len(debits), taken.rowcount, len(takes))
    _check_stock(stock.rowcount, item.id, item_locked)
    ids = {(row["customer_id"], row["idempotency_key"]): row["id"] for row in redemption_ids.rows}
    written = [_REDEMPTION_ROWS.instance(ids[(r["customer_id"], r["idempotency_key"])], r) for r in redemptions]
    by_customer = {r.customer_id: str(r.id) for r in written}  # type: ignore[attr-defined]
    stored = [{**values, "source_id": by_customer[values["customer_id"]]} for values in vouchers]
    return _answers(written, stored, {row["code"]: row["id"] for row in voucher_ids.rows})


_REDEMPTION_ROWS = RowInsert(MallRedemption)
_LEDGER_ROWS = RowInsert(PointsLedgerEntry)
_LOT_USE_ROWS = RowInsert(PointsLotUse)
_VOUCHER_ROWS = RowInsert(Voucher)


def _any_of(conditions: Iterable[Q]) -> Q:
    return Q(*conditions, join_type=Q.OR)


def _take_from_each(table: str, column: str, amounts: dict[int, int], **also: Any) -> tuple[str, list[Any]]:
    """The UPDATE (and its parameters) that subtracts each row's amount from `column`, only where the row
    holds at least that much; the caller checks it changed every row. MySQL/MariaDB.

    Parameterised SQL: the ORM's Q/Case/When for a batch's rows took a tenth of a batched redemption's
    server CPU to build (bench/profile.py)."""
    cases = " ".join(f"WHEN %s THEN {column} - %s" for _ in amounts)
    sets = "".join(f", {name} = %s" for name in also)
    where = " OR ".join(f"(id = %s AND {column} >= %s)" for _ in amounts)
    params: list[Any] = [v for row_id, amount in amounts.items() for v in (row_id, amount)]
    params += list(also.values())
    params += [v for row_id, amount in amounts.items() for v in (row_id, amount)]
    return f"UPDATE {table} SET {column} = CASE id {cases} ELSE {column} END{sets} WHERE {where}", params


