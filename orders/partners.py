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
