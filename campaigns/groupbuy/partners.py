"""The group-buy room's calls into the points room, in one place (the cross-room contract).

A group leader earns bonus points, group-buy orders are fulfilled with vouchers
(`issue_vouchers(source_type="group_order")`) and "new customers only" asks whether the customer has
consumed before. Every call runs inside the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime

from tortoise.backends.base.client import BaseDBAsyncClient

from points_mall import service as points
from points_mall import vouchers

GROUP_ORDER = "group_order"


async def customer_has_consumption(conn: BaseDBAsyncClient, customer_id: int) -> bool:
    return bool(await points.customer_has_consumption(conn, customer_id))


async def earn_points(
    conn: BaseDBAsyncClient, *, customer_id: int, points_earned: int, kind: str, ref: str, reason: str
) -> None:
    await points.earn_points(conn, customer_id=customer_id, points=points_earned, kind=kind, ref=ref, reason=reason)


async def issue_group_vouchers(
    conn: BaseDBAsyncClient, *, customer_id: int, order_id: int, title: str, quantity: int,
    valid_until: datetime, branch_ids: list[int] | None = None, service_id: int | None = None,
) -> int:
    """The vouchers a group-buy order entitles to; idempotent per order."""
    issued = await vouchers.issue_vouchers(
        conn, customer_id=customer_id, source_type=GROUP_ORDER, source_id=order_id, title=title,
        quantity=quantity, valid_until=valid_until, branch_ids=branch_ids, service_id=service_id,
    )
    return len(issued)


async def cancel_group_vouchers(conn: BaseDBAsyncClient, *, order_id: int, reason: str) -> int:
    """Cancel the order's vouchers not yet redeemed; returns how many were cancelled."""
    return await vouchers.cancel_vouchers(conn, source_type=GROUP_ORDER, source_id=order_id, reason=reason)
