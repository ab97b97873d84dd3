"""The orders room's calls into the points room, in one place (the cross-room contract).

A paid order is consumption (`record_consumption(source="order", external_ref="order:<id>")`, which
also tells referrals) and a refund reverses it. Every call runs inside the caller's transaction.
"""

from __future__ import annotations

from tortoise.backends.base.client import BaseDBAsyncClient

from points_mall import service as points
from points_mall.errors import ConsumptionNotFound


async def record_order_consumption(conn: BaseDBAsyncClient, *, order_id: int, customer_id: int, amount_fen: int) -> None:
    """A paid order counts as consumption (points, referral qualification); idempotent on the order."""
    await points.record_consumption(
        conn, customer_id=customer_id, amount_fen=amount_fen, source="order", external_ref=f"order:{order_id}"
    )


async def refund_order_consumption(
    conn: BaseDBAsyncClient, *, order_id: int, refunded_fen: int, out_refund_no: str
) -> None:
    try:
        await points.refund_consumption(
            conn, external_ref=f"order:{order_id}", refunded_fen=refunded_fen, ref=f"refund:{out_refund_no}"
        )
    except ConsumptionNotFound:
        # The order was refunded in full before its paid job ran, which then recorded no consumption.
        return


# --- checkout: member tier and points as cash --------------------------------------------------------

async def member_tier(conn: BaseDBAsyncClient, customer_id: int, account=None) -> int | None:
    """The customer's tier id when that tier is switched on (a disabled tier gives no member price).
    `account`: the points account already read under the checkout's lock (saves reading it again)."""
    from points_mall.models import MemberTier, PointsAccount

    if account is None:
        account = await PointsAccount.get_or_none(customer_id=customer_id).using_db(conn)
    if account is None or account.tier_id is None:  # type: ignore[attr-defined]
        return None
    tier = await MemberTier.get_or_none(id=account.tier_id).using_db(conn)  # type: ignore[attr-defined]
    return tier.id if tier is not None and tier.is_active else None


async def lock_points(conn: BaseDBAsyncClient, customer_id: int):
    """Lock the customer (and their points) for the checkout's transaction; returns the spendable points and
    the locked points account (its tier gives the member price).

    Taken first in every checkout, so one customer's checkouts, refunds and top-ups queue rather than
    interleave (the customer row is the lock every room takes first).
    """
    from points_mall.ledger import spendable

    account = await points.lock_account(conn, customer_id)
    return await spendable(conn, customer_id), account


async def spend_points_as_cash(conn: BaseDBAsyncClient, *, customer_id: int, order_id: int, points_used: int) -> None:
    await points.spend_points(conn, customer_id=customer_id, points=points_used, kind="redemption",
                              ref=points_ref(order_id), reason=f"Points as cash, order {order_id}")


async def give_points_back(conn: BaseDBAsyncClient, *, order_id: int, ref: str, points_back: int | None) -> None:
    """Give back points an order spent (all that is left when `points_back` is None); once per `ref`."""
    await points.reverse_points(conn, original_ref=points_ref(order_id), ref=ref, points=points_back,
                                reason=f"Points returned, order {order_id}")


def points_ref(order_id: int) -> str:
    return f"order_points:{order_id}"
