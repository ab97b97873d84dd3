"""Read-side views of points: a customer's overview (spendable, pending, expiring, tier progress) and the liability report."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.functions import Count, Sum

from kernel import clock
from points_mall.ledger import account_summary, expiring_within, spendable
from points_mall.models import MemberTier, PendingPoints, PendingStatus, PointsAccount, PointsLot
from points_mall.rules import get_rules
from points_mall.tiers import active_tiers, qualifies, standing


def tier_view(tier: MemberTier | None) -> dict[str, Any] | None:
    if tier is None:
        return None
    return {
        "id": tier.id, "name": tier.name, "level": tier.level, "multiplier_pct": tier.multiplier_pct,
        "benefits": tier.benefits, "min_spend_fen": tier.min_spend_fen, "min_referrals": tier.min_referrals,
        "match": tier.match.value,
    }


async def overview(conn: BaseDBAsyncClient, customer_id: int) -> dict[str, Any]:
    account = await account_summary(conn, customer_id)
    rules = await get_rules(conn)
    now = clock.now()
    tiers = await active_tiers(conn)
    current = next((t for t in tiers if t.id == account.tier_id), None)  # type: ignore[attr-defined]
    facts = await standing(conn, customer_id)
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
    horizon = now + timedelta(days=rules.expiry_reminder_days or 30)
    soonest = await PointsLot.filter(
        customer_id=customer_id, remaining__gt=0, expires_at__gt=now
    ).using_db(conn).order_by("expires_at").first()
    return {
        "balance": account.balance,
        "spendable": await spendable(conn, customer_id),
        "pending": account.pending,
        "expiring_soon": await expiring_within(conn, customer_id, horizon),
        "expiring_soon_until": horizon,
        "next_expiry_at": soonest.expires_at if soonest else None,
        "shortfall": account.shortfall,
        "lifetime_earned": account.lifetime_earned,
        "tier": tier_view(current),
        "standing": facts,
        "next_tier": progress,
    }


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
