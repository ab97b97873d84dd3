"""Member tiers (会员等级): qualification by spend in the window and/or qualified referrals, changes with reasons."""

from __future__ import annotations

from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.functions import Sum

from kernel import clock
from kernel.errors import ValidationFailed
from points_mall.errors import TierConflict, TierNotFound
from points_mall.ledger import lock_account
from points_mall.models import (
    Consumption,
    MemberTier,
    PointsAccount,
    QualifiedReferral,
    TierChange,
    TierMatch,
)
from points_mall.rules import get_rules, months_ago


async def active_tiers(conn: BaseDBAsyncClient) -> list[MemberTier]:
    return await MemberTier.filter(is_active=True).using_db(conn).order_by("level")


async def tier_of(conn: BaseDBAsyncClient, account: PointsAccount) -> MemberTier | None:
    if account.tier_id is None:  # type: ignore[attr-defined]
        return None
    return await MemberTier.get_or_none(id=account.tier_id, using_db=conn)  # type: ignore[attr-defined]


async def multiplier_pct(conn: BaseDBAsyncClient, account: PointsAccount) -> int:
    tier = await tier_of(conn, account)
    return tier.multiplier_pct if tier is not None and tier.is_active else 100


async def standing(conn: BaseDBAsyncClient, customer_id: int) -> dict[str, int]:
    """What tiers are judged on: net spend and qualified referrals within the rolling window."""
    rules = await get_rules(conn)
    since = months_ago(clock.now(), rules.tier_window_months)
    rows = await Consumption.filter(customer_id=customer_id, occurred_at__gte=since).using_db(conn).annotate(
        paid=Sum("amount_fen"), refunded=Sum("refunded_fen")
    ).values("paid", "refunded")
    row = rows[0] if rows else {}
    spend = int(row.get("paid") or 0) - int(row.get("refunded") or 0)
    referrals = await QualifiedReferral.filter(referrer_id=customer_id, occurred_at__gte=since).using_db(conn).count()
    return {"spend_fen": spend, "referrals": referrals}


def qualifies(tier: MemberTier, spend_fen: int, referrals: int) -> bool:
    checks = []
    if tier.min_spend_fen is not None:
        checks.append(spend_fen >= tier.min_spend_fen)
    if tier.min_referrals is not None:
        checks.append(referrals >= tier.min_referrals)
    if not checks:
        return True  # a tier with no threshold is the entry tier everyone holds
    return all(checks) if tier.match == TierMatch.all else any(checks)


def qualifying_tier(tiers: list[MemberTier], spend_fen: int, referrals: int) -> MemberTier | None:
    best = None
    for tier in tiers:  # ordered by level
        if qualifies(tier, spend_fen, referrals):
            best = tier
    return best


async def evaluate_tier(
    conn: BaseDBAsyncClient, customer_id: int, *, allow_down: bool, reason: str
) -> TierChange | None:
    """Move the customer to the tier they qualify for: up at once, down only when `allow_down`."""
    account = await lock_account(conn, customer_id)
    tiers = await active_tiers(conn)
    facts = await standing(conn, customer_id)
    target = qualifying_tier(tiers, facts["spend_fen"], facts["referrals"])
    current = await tier_of(conn, account)
    if (target.id if target else None) == account.tier_id:  # type: ignore[attr-defined]
        return None
    # A deactivated tier counts as no tier; levels are unique, so comparing levels orders tiers.
    current_level = current.level if current is not None and current.is_active else -1
    going_up = (target.level if target is not None else -1) > current_level
    if not going_up and not allow_down:
        return None
    now = clock.now()
    await PointsAccount.filter(id=account.id).using_db(conn).update(
        tier_id=target.id if target else None, tier_changed_at=now, updated_at=now
    )
    return await TierChange.create(
        customer_id=customer_id,
        from_tier_id=current.id if current else None,
        to_tier_id=target.id if target else None,
        direction="up" if going_up else "down",
        reason=reason[:255],
        detail={**facts, "from": current.name if current else None, "to": target.name if target else None},
        occurred_at=now,
        using_db=conn,
    )


async def record_qualified_referral(conn: BaseDBAsyncClient, *, referrer_id: int, ref: str) -> TierChange | None:
    """Count a qualified referral for the referrer's tier (idempotent on `ref`); may upgrade the tier."""
    await lock_account(conn, referrer_id)
    try:
        await QualifiedReferral.create(referrer_id=referrer_id, ref=ref, occurred_at=clock.now(), using_db=conn)
    except IntegrityError:
        return None
    return await evaluate_tier(conn, referrer_id, allow_down=False, reason=f"qualified referral {ref}")


def _validate(fields: dict[str, Any]) -> None:
    for name in ("min_spend_fen", "min_referrals"):
        if fields.get(name) is not None and fields[name] < 0:
            raise ValidationFailed(f"{name} cannot be negative.", field=name)
    if "multiplier_pct" in fields and not 0 <= fields["multiplier_pct"] <= 1000:
        raise ValidationFailed("multiplier_pct must be between 0 and 1000.", field="multiplier_pct")
    if "level" in fields and fields["level"] < 0:
        raise ValidationFailed("level cannot be negative.", field="level")


async def create_tier(conn: BaseDBAsyncClient, **fields: Any) -> MemberTier:
    _validate(fields)
    now = clock.now()
    try:
        return await MemberTier.create(**fields, created_at=now, updated_at=now, using_db=conn)
    except IntegrityError as exc:
        raise TierConflict(field="level") from exc


async def update_tier(conn: BaseDBAsyncClient, tier_id: int, changes: dict[str, Any]) -> MemberTier:
    _validate(changes)
    tier = await MemberTier.get_or_none(id=tier_id, using_db=conn)
    if tier is None:
        raise TierNotFound()
    for name, value in changes.items():
        setattr(tier, name, value)
    tier.updated_at = clock.now()
    try:
        await tier.save(using_db=conn)
    except IntegrityError as exc:
        raise TierConflict(field="level") from exc
    return tier


async def accounts_with_tier(conn: BaseDBAsyncClient, *, after_id: int, limit: int) -> list[int]:
    rows = await PointsAccount.filter(id__gt=after_id).using_db(conn).order_by("id").limit(limit).values_list(
        "id", "customer_id"
    )
    return list(rows)
