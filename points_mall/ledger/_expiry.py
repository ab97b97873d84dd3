"""Expiry of lots whose time has come, and the points about to expire."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from tortoise.backends.base.client import BaseDBAsyncClient

from kernel import clock
from points_mall.ledger._accounts import _append, lock_account
from points_mall.models import EntryKind, PointsLedgerEntry, PointsLot, PointsLotUse

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


async def expiring_within(conn: BaseDBAsyncClient, customer_id: int, until: datetime) -> int:
    now = clock.now()
    lots = await PointsLot.filter(
        customer_id=customer_id, remaining__gt=0, expires_at__gt=now, expires_at__lte=until
    ).using_db(conn)
    return sum(lot.remaining for lot in lots)
