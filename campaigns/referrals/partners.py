"""Calls into other rooms (points_mall, booking) through the contracts in the helper brief.

Every cross-room call of the referral room goes through this module, so the seams are in one place.
A room that is not merged on this branch yet is detected with `kernel.modules.exists` (an import
error *inside* a present module still raises); the fallbacks are marked CONTRACT-FALLBACK.
"""

from __future__ import annotations

import importlib
from datetime import datetime
from typing import Any

import structlog
from tortoise.backends.base.client import BaseDBAsyncClient

from kernel.modules import exists

log = structlog.get_logger(__name__)

WELCOME_VOUCHER_SOURCE = "referral_welcome"


def _service(module: str) -> Any | None:
    return importlib.import_module(module) if exists(module) else None


def _points_service() -> Any:
    service = _service("points_mall.service")
    if service is None:  # CONTRACT-FALLBACK: points rewards cannot exist without the points room
        raise RuntimeError("points_mall.service is not installed; points rewards need the points room")
    return service


async def customer_has_consumption(conn: BaseDBAsyncClient, customer_id: int) -> bool:
    """Contract: points_mall.service.customer_has_consumption(conn, customer_id) -> bool."""
    service = _service("points_mall.service")
    if service is None or not hasattr(service, "customer_has_consumption"):
        # CONTRACT-FALLBACK: without the points room there is no consumption to find.
        log.warning("referrals.contract_missing", call="points_mall.service.customer_has_consumption")
        return False
    return bool(await service.customer_has_consumption(conn, customer_id))


async def customer_has_booking(conn: BaseDBAsyncClient, customer_id: int) -> bool:
    """Contract: booking.service.customer_has_booking(conn, customer_id) -> bool."""
    service = _service("booking.service")
    if service is None or not hasattr(service, "customer_has_booking"):
        # CONTRACT-FALLBACK: without the booking room there is no booking to find.
        log.warning("referrals.contract_missing", call="booking.service.customer_has_booking")
        return False
    return bool(await service.customer_has_booking(conn, customer_id))


async def earn_points(conn: BaseDBAsyncClient, *, customer_id: int, points: int, kind: str, ref: str, reason: str) -> Any:
    """Contract: idempotent on `ref` (a repeat returns the existing entry and changes nothing)."""
    return await _points_service().earn_points(
        conn, customer_id=customer_id, points=points, kind=kind, ref=ref, reason=reason
    )


async def reverse_points(conn: BaseDBAsyncClient, *, original_ref: str, ref: str, reason: str) -> Any:
    return await _points_service().reverse_points(conn, original_ref=original_ref, ref=ref, reason=reason)


async def record_qualified_referral(conn: BaseDBAsyncClient, *, referrer_id: int, ref: str) -> None:
    """Contract: counts a qualified referral for tiers (may upgrade the referrer's tier)."""
    service = _service("points_mall.service")
    if service is None or not hasattr(service, "record_qualified_referral"):
        # CONTRACT-FALLBACK: tiers live in the points room; nothing to feed without it.
        log.warning("referrals.contract_missing", call="points_mall.service.record_qualified_referral")
        return
    await service.record_qualified_referral(conn, referrer_id=referrer_id, ref=ref)


async def issue_welcome_voucher(
    conn: BaseDBAsyncClient, *, customer_id: int, binding_id: int, title: str, valid_until: datetime
) -> Any:
    """Contract: points_mall.vouchers.issue_vouchers, idempotent per (source_type, source_id)."""
    vouchers = _service("points_mall.vouchers")
    if vouchers is None:  # CONTRACT-FALLBACK
        raise RuntimeError("points_mall.vouchers is not installed; voucher welcome rewards need the points room")
    return await vouchers.issue_vouchers(
        conn,
        customer_id=customer_id,
        source_type=WELCOME_VOUCHER_SOURCE,
        source_id=binding_id,
        title=title,
        quantity=1,
        valid_until=valid_until,
    )


async def cancel_welcome_voucher(conn: BaseDBAsyncClient, *, binding_id: int, reason: str) -> int:
    vouchers = _service("points_mall.vouchers")
    if vouchers is None:  # CONTRACT-FALLBACK
        return 0
    return await vouchers.cancel_vouchers(
        conn, source_type=WELCOME_VOUCHER_SOURCE, source_id=binding_id, reason=reason
    )
