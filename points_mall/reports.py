"""Read-side views of points: a customer's overview (spendable, pending, expiring, tier progress) and the liability report."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.functions import Count, Sum

from kernel import clock
from kernel.batch import packed, packed_datetime, unpacked
from kernel.cache import SharedAnswerCache
from kernel.identity.service import AccountErased, customer_is_active
from kernel.sql import named_in_list
from kernel.together import Together, reads_may_be_shared
from points_mall.errors import PointsCustomerNotFound
from points_mall.ledger import account_summary, expiring_within, spendable
from points_mall.models import MemberTier, PendingPoints, PendingStatus, PointsAccount, PointsLot, PointsRules
from points_mall.rules import get_rules, months_ago
from points_mall.tiers import active_tiers, qualifies, standing


def tier_view(tier: MemberTier | None) -> dict[str, Any] | None:
    if tier is None:
        return None
    return {
        "id": tier.id, "name": tier.name, "level": tier.level, "multiplier_pct": tier.multiplier_pct,
        "benefits": tier.benefits, "min_spend_fen": tier.min_spend_fen, "min_referrals": tier.min_referrals,
        "match": tier.match.value,
    }


def _shape(
    *, balance: int, pending: int, shortfall: int, lifetime_earned: int, tier_id: int | None, spendable_now: int,
    expiring_soon: int, horizon: datetime, next_expiry_at: datetime | None, facts: dict[str, int],
    tiers: list[MemberTier],
) -> dict[str, Any]:
    current = next((t for t in tiers if t.id == tier_id), None)
    higher = [t for t in tiers if current is None or t.level > current.level]
    next_tier = next((t for t in higher if not qualifies(t, facts["spend_fen"], facts["referrals"])), None)
    progress = None
    if next_tier is not None:
        progress = {
            "tier": tier_view(next_tier),
            "spend_needed_fen": max(0, next_tier.min_spend_fen - facts["spend_fen"])
            if next_tier.min_spend_fen is not None else None,
            "referrals_needed": max(0, next_tier.min_referrals - facts["referrals"])
            if next_tier.min_referrals is not None else None,
        }
    return {
        "balance": balance,
        "spendable": spendable_now,
        "pending": pending,
        "expiring_soon": expiring_soon,
        "expiring_soon_until": horizon,
        "next_expiry_at": next_expiry_at,
        "shortfall": shortfall,
        "lifetime_earned": lifetime_earned,
        "tier": tier_view(current),
        "standing": facts,
        "next_tier": progress,
    }


# The rules and the active tiers are the same for every customer: kept for the stated time of kernel.cache
# (a tier or rule change shows in the overview at most that late; tier moves themselves are decided by the
# tier job on the rows).
_SHARED_POLICY: SharedAnswerCache[tuple[PointsRules, list[MemberTier]]] = SharedAnswerCache(
    "points.rules_and_tiers", max_entries=1)

# The customers' own state in one statement (one snapshot, so balance and lots agree): per customer the account,
# the lots' three sums, and the tier standing's spend and referrals in the rolling window. Its values come back
# as one JSON array column: the driver parses every column's description in Python, about 5 µs a column and
# statement, half the client's cost of this read (kernel.batch.packed says more). The customer's id leads the
# array: the customers' own route reads several customers at once (`own_overview`).
_OWN_STATES = packed(
    "c.id", "a.balance", "a.pending", "a.shortfall", "a.lifetime_earned", "a.tier_id",
    "(SELECT COALESCE(SUM(l.remaining), 0) FROM points_lot l WHERE l.customer_id = c.id AND l.remaining > 0"
    " AND (l.expires_at IS NULL OR l.expires_at > %(now)s))",
    "(SELECT COALESCE(SUM(l.remaining), 0) FROM points_lot l WHERE l.customer_id = c.id AND l.remaining > 0"
    " AND l.expires_at > %(now)s AND l.expires_at <= %(horizon)s)",
    "(SELECT MIN(l.expires_at) FROM points_lot l WHERE l.customer_id = c.id AND l.remaining > 0"
    " AND l.expires_at > %(now)s)",
    "(SELECT COALESCE(SUM(p.amount_fen), 0) - COALESCE(SUM(p.refunded_fen), 0) FROM points_consumption p"
    " WHERE p.customer_id = c.id AND p.occurred_at >= %(since)s)",
    "(SELECT COUNT(*) FROM points_qualified_referral q WHERE q.referrer_id = c.id AND q.occurred_at >= %(since)s)",
    "c.deleted_at IS NULL",
) + " FROM customer c LEFT JOIN points_account a ON a.customer_id = c.id WHERE c.id IN {customers}"


class _OwnStates(NamedTuple):
    """What the statement found per customer id (absent: no such customer), and what shapes an overview."""

    found: dict[int, list[Any]]
    tiers: list[MemberTier]
    horizon: datetime


async def _own_states(conn: BaseDBAsyncClient, customer_ids: list[int]) -> _OwnStates:
    async def load_policy() -> tuple[PointsRules, list[MemberTier]]:
        return await get_rules(conn), await active_tiers(conn)

    rules, tiers = await _SHARED_POLICY.get("policy", load_policy)
    now = clock.now()
    horizon = now + timedelta(days=rules.expiry_reminder_days or 30)
    since = months_ago(now, rules.tier_window_months)
    utc = timezone.utc
    customers, ids = named_in_list("c", customer_ids)
    _, rows = await conn.execute_query(_OWN_STATES.format(customers=customers), {  # type: ignore[arg-type]
        "now": now.astimezone(utc), "horizon": horizon.astimezone(utc), "since": since.astimezone(utc), **ids,
    })
    found = {values[0]: values[1:] for values in map(unpacked, rows)}
    return _OwnStates(found, tiers, horizon)


def _overview_of(states: _OwnStates, customer_id: int, *, active_only: bool) -> dict[str, Any]:
    values = states.found.get(customer_id)
    if values is None:
        raise PointsCustomerNotFound(customer_id=customer_id)
    (balance, pending, shortfall, lifetime_earned, tier_id, spendable_now, expiring_soon, next_expiry,
     spend_fen, referrals, active) = values
    if active_only and not active:
        raise AccountErased()
    return _shape(
        balance=balance or 0, pending=pending or 0, shortfall=shortfall or 0,
        lifetime_earned=lifetime_earned or 0, tier_id=tier_id,
        spendable_now=int(spendable_now), expiring_soon=int(expiring_soon), horizon=states.horizon,
        # The columns hold UTC without a zone (Tortoise's use_tz); the API answers with the offset.
        next_expiry_at=packed_datetime(next_expiry, timezone.utc),
        facts={"spend_fen": int(spend_fen), "referrals": int(referrals)}, tiers=states.tiers,
    )


async def overview(conn: BaseDBAsyncClient, customer_id: int, *, active_only: bool = False) -> dict[str, Any]:
    """Spendable, pending and expiring points, tier and progress. On MySQL/MariaDB one statement for the
    customer's own state plus the shared rules and tiers; the general path (SQLite) reads them with the ORM.

    `active_only`: an erased customer is refused (`AccountErased`), checked in the same statement; the
    customer's own route leaves its guard's check to it. Staff see an erased customer's figures."""
    if conn.capabilities.dialect != "mysql":
        if active_only and not await customer_is_active(customer_id, conn):
            raise AccountErased()
        return await _overview_orm(conn, customer_id)
    return _overview_of(await _own_states(conn, [customer_id]), customer_id, active_only=active_only)


async def _serve_own_states(customer_ids: list[int]) -> list[_OwnStates]:
    states = await _own_states(connections.get("default"), sorted(set(customer_ids)))
    return [states] * len(customer_ids)


# The customers' own route, on MySQL/MariaDB: the overviews asked in the same pass of the event loop are read by
# one statement (kernel.together: sent after every one of them was asked, so each sees every write answered
# before it; nothing is kept afterwards). Under load this shares the round trip, the driver's parsing and the
# statement's parse in the database, which were most of the read's cost (docs/benchmarks.md, round 8).
_READ_TOGETHER: Together[int, _OwnStates] = Together(_serve_own_states, most=100)


async def own_overview(conn: BaseDBAsyncClient, customer_id: int) -> dict[str, Any]:
    """The customer's own overview (`overview` with `active_only`), read together with the other customers
    asking in the same moment when `conn` is the pool (no transaction) on MySQL/MariaDB."""
    if not reads_may_be_shared(conn):
        return await overview(conn, customer_id, active_only=True)
    return _overview_of(await _READ_TOGETHER.ask(customer_id), customer_id, active_only=True)


async def _overview_orm(conn: BaseDBAsyncClient, customer_id: int) -> dict[str, Any]:
    account = await account_summary(conn, customer_id)
    rules = await get_rules(conn)
    now = clock.now()
    tiers = await active_tiers(conn)
    horizon = now + timedelta(days=rules.expiry_reminder_days or 30)
    soonest = await PointsLot.filter(
        customer_id=customer_id, remaining__gt=0, expires_at__gt=now
    ).using_db(conn).order_by("expires_at").first()
    return _shape(
        balance=account.balance, pending=account.pending, shortfall=account.shortfall,
        lifetime_earned=account.lifetime_earned, tier_id=account.tier_id,  # type: ignore[attr-defined]
        spendable_now=await spendable(conn, customer_id),
        expiring_soon=await expiring_within(conn, customer_id, horizon), horizon=horizon,
        next_expiry_at=soonest.expires_at if soonest else None, facts=await standing(conn, customer_id),
        tiers=tiers,
    )


async def liability(conn: BaseDBAsyncClient) -> dict[str, Any]:
    """Points outstanding (the clinic owes them), pending, shortfalls, and what expires in each month."""
    totals = await PointsAccount.all().using_db(conn).annotate(
        balance=Sum("balance"), pending=Sum("pending"), shortfall=Sum("shortfall"), accounts=Count("id")
    ).values("balance", "pending", "shortfall", "accounts")
    row = totals[0] if totals else {}
    holders = await PointsAccount.filter(balance__gt=0).using_db(conn).count()
    # Lots expire at month boundaries, so grouping by the expiry instant gives few rows.
    lots = await PointsLot.filter(remaining__gt=0).using_db(conn).annotate(points=Sum("remaining")).group_by(
        "expires_at"
    ).values_list("expires_at", "points")
    by_month: dict[str, int] = defaultdict(int)
    never = 0
    zone = clock.clinic_zone()
    for expires_at, remaining in lots:
        if expires_at is None:
            never += int(remaining)
            continue
        # A lot that expires at 00:00 on 1 December belongs to November's expiry.
        month = (expires_at.astimezone(zone) - timedelta(seconds=1)).strftime("%Y-%m")
        by_month[month] += int(remaining)
    pending_by_release: dict[str, int] = defaultdict(int)
    for release_at, points in await PendingPoints.filter(status=PendingStatus.pending).using_db(conn).values_list(
        "release_at", "points"
    ):
        pending_by_release[release_at.astimezone(zone).strftime("%Y-%m")] += points
    return {
        "as_of": clock.now(),
        "outstanding": int(row.get("balance") or 0),
        "pending": int(row.get("pending") or 0),
        "shortfall": int(row.get("shortfall") or 0),
        "accounts": int(row.get("accounts") or 0),
        "customers_with_points": holders,
        "expiring_by_month": [{"month": m, "points": p} for m, p in sorted(by_month.items())],
        "never_expiring": never,
        "pending_by_release_month": [{"month": m, "points": p} for m, p in sorted(pending_by_release.items())],
    }
