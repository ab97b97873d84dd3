"""Calls into other rooms (points_mall, booking) through the contracts in the helper brief.

Every cross-room call of the referral room goes through this module, so the seams are in one place
and the referral code reads in its own words (welcome voucher, reward points).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from booking import service as booking
from points_mall import service as points_room
from points_mall import vouchers

WELCOME_VOUCHER_SOURCE = "referral_welcome"
POINTS_KIND = "referral"


async def customer_has_consumption(conn: BaseDBAsyncClient, customer_id: int) -> bool:
    return bool(await points_room.customer_has_consumption(conn, customer_id))


async def customer_has_booking(conn: BaseDBAsyncClient, customer_id: int) -> bool:
    return bool(await booking.customer_has_booking(conn, customer_id))


async def earn_points(conn: BaseDBAsyncClient, *, customer_id: int, points: int, ref: str, reason: str) -> Any:
    """Credit reward points at once (the hold already happened here). Idempotent on `ref`."""
    return await points_room.earn_points(
        conn, customer_id=customer_id, points=points, kind=POINTS_KIND, ref=ref, reason=reason
    )


async def reverse_points(conn: BaseDBAsyncClient, *, original_ref: str, ref: str, reason: str) -> Any:
    """Take reward points back (stops at zero if they were spent; the points room records the shortfall)."""
    return await points_room.reverse_points(conn, original_ref=original_ref, ref=ref, reason=reason)


async def record_qualified_referral(conn: BaseDBAsyncClient, *, referrer_id: int, ref: str) -> None:
    """Counts a qualified referral for tiers (may upgrade the referrer's tier). Idempotent on `ref`."""
    await points_room.record_qualified_referral(conn, referrer_id=referrer_id, ref=ref)


async def issue_welcome_voucher(
    conn: BaseDBAsyncClient, *, customer_id: int, binding_id: int, title: str, valid_until: datetime
) -> Any:
    """Idempotent per (source_type, source_id): one welcome voucher per binding."""
    return await vouchers.issue_vouchers(
        conn, customer_id=customer_id, source_type=WELCOME_VOUCHER_SOURCE, source_id=binding_id, title=title,
        quantity=1, valid_until=valid_until,
    )


async def cancel_welcome_voucher(conn: BaseDBAsyncClient, *, binding_id: int, reason: str) -> int:
    """Cancels the welcome voucher if still unredeemed (a redeemed one stays: the visit happened)."""
    return await vouchers.cancel_vouchers(
        conn, source_type=WELCOME_VOUCHER_SOURCE, source_id=binding_id, reason=reason
    )
