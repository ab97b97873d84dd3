"""CONTRACT BRIDGE to the points room (points_mall): consumption, points, vouchers.

Orders and group buys call the points room only through these functions, each of which calls the
function the cross-room contract names (helper brief, "Cross-room contracts"):
`points_mall.service.record_consumption / refund_consumption / customer_has_consumption / earn_points`
and `points_mall.vouchers.issue_vouchers / cancel_vouchers`.

While the `points` branch is not merged, the contract functions do not exist: each call below then logs
`points_bridge.contract_missing` and does nothing (returns a neutral value), so orders and group buys work
on their own. Once `points_mall` provides them, the calls happen, inside the caller's transaction.
"""

from __future__ import annotations

import importlib
from datetime import datetime
from typing import Any

import structlog
from tortoise.backends.base.client import BaseDBAsyncClient

from kernel.modules import exists

log = structlog.get_logger(__name__)


def _contract(module: str, name: str) -> Any | None:
    if not exists(module):
        log.warning("points_bridge.contract_missing", function=f"{module}.{name}")
        return None
    function = getattr(importlib.import_module(module), name, None)
    if function is None:
        log.warning("points_bridge.contract_missing", function=f"{module}.{name}")
    return function


async def record_order_consumption(conn: BaseDBAsyncClient, *, order_id: int, customer_id: int, amount_fen: int) -> None:
    """A paid order counts as consumption (points, referral qualification); idempotent on the order."""
    function = _contract("points_mall.service", "record_consumption")
    if function is not None:
        await function(
            conn, customer_id=customer_id, amount_fen=amount_fen, source="order", external_ref=f"order:{order_id}"
        )


async def refund_order_consumption(
    conn: BaseDBAsyncClient, *, order_id: int, refunded_fen: int, out_refund_no: str
) -> None:
    function = _contract("points_mall.service", "refund_consumption")
    if function is not None:
        await function(conn, external_ref=f"order:{order_id}", refunded_fen=refunded_fen, ref=f"refund:{out_refund_no}")


async def customer_has_consumption(conn: BaseDBAsyncClient, customer_id: int) -> bool:
    function = _contract("points_mall.service", "customer_has_consumption")
    return bool(await function(conn, customer_id)) if function is not None else False


async def earn_points(
    conn: BaseDBAsyncClient, *, customer_id: int, points: int, kind: str, ref: str, reason: str
) -> None:
    function = _contract("points_mall.service", "earn_points")
    if function is not None:
        await function(conn, customer_id=customer_id, points=points, kind=kind, ref=ref, reason=reason)


async def issue_vouchers(
    conn: BaseDBAsyncClient, *, customer_id: int, source_type: str, source_id: int, title: str, quantity: int,
    valid_until: datetime, branch_ids: list[int] | None = None, service_id: int | None = None,
) -> int:
    """Issue the vouchers a group-buy order entitles to; idempotent per (source_type, source_id)."""
    function = _contract("points_mall.vouchers", "issue_vouchers")
    if function is None:
        return 0
    issued = await function(
        conn, customer_id=customer_id, source_type=source_type, source_id=source_id, title=title,
        quantity=quantity, valid_until=valid_until, branch_ids=branch_ids, service_id=service_id,
    )
    return len(issued)


async def cancel_vouchers(conn: BaseDBAsyncClient, *, source_type: str, source_id: int, reason: str) -> int:
    function = _contract("points_mall.vouchers", "cancel_vouchers")
    if function is None:
        return 0
    return int(await function(conn, source_type=source_type, source_id=source_id, reason=reason))
