"""Vouchers (券/核销码): the one entitlement object for mall redemptions, group buys and referral welcomes.

A voucher has an unguessable code, is issued idempotently per `(source_type, source_id)`, and moves
from `issued` to exactly one of `redeemed`, `expired` or `cancelled` through conditional updates.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError

from kernel import clock
from kernel.errors import ValidationFailed
from points_mall.errors import (
    VoucherAlreadyRedeemed,
    VoucherCancelled,
    VoucherExpired,
    VoucherNotFound,
    VoucherWrongBranch,
)
from points_mall.models import Voucher, VoucherStatus

__all__ = [
    "Voucher",
    "VoucherStatus",
    "cancel_vouchers",
    "expire_due_vouchers",
    "find_voucher",
    "issue_vouchers",
    "new_voucher_code",
    "redeem_voucher",
]

# No 0/O/1/I/L: codes are read aloud and typed at the front desk. 16 characters of 31 give ~79 bits.
_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
_CODE_LENGTH = 16
_CODE_COLUMN_LENGTH = Voucher._meta.fields_map["code"].max_length


def new_voucher_code() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(_CODE_LENGTH))


def normalise_code(code: str) -> str:
    return code.strip().upper().replace("-", "").replace(" ", "").removeprefix("CLINIC-VOUCHER:")


async def issue_vouchers(
    conn: BaseDBAsyncClient,
    *,
    customer_id: int,
    source_type: str,
    source_id: int | str,
    title: str,
    quantity: int = 1,
    valid_until: datetime,
    branch_ids: list[int] | None = None,
    service_id: int | None = None,
) -> list[Voucher]:
    """Issue `quantity` vouchers for one source; a repeat for the same source returns the existing ones."""
    if quantity < 1:
        raise ValidationFailed("quantity must be at least 1.", field="quantity")
    if valid_until.tzinfo is None:
        raise ValidationFailed("valid_until must be timezone-aware.", field="valid_until")
    source_id = str(source_id)
    existing = await Voucher.filter(source_type=source_type, source_id=source_id).using_db(conn).order_by("seq")
    if existing:
        return existing
    now = clock.now()
    issued: list[Voucher] = []
    for seq in range(1, quantity + 1):
        for _ in range(5):
            try:
                voucher = await Voucher.create(
                    code=new_voucher_code(), customer_id=customer_id, source_type=source_type,
                    source_id=source_id, seq=seq, title=title[:128], valid_until=valid_until,
                    branch_ids=sorted(set(branch_ids or [])), service_id=service_id, issued_at=now,
                    using_db=conn,
                )
                issued.append(voucher)
                break
            except IntegrityError:
                # Either the source was issued concurrently (return those) or the code collided (retry).
                # A locking read sees the concurrent issue's commit even if this snapshot is older.
                if seq == 1:
                    concurrent = await Voucher.filter(
                        source_type=source_type, source_id=source_id
                    ).using_db(conn).select_for_update().order_by("seq")
                    if concurrent:
                        return concurrent
        else:
            raise RuntimeError("could not allocate a voucher code")
    return issued


async def cancel_vouchers(conn: BaseDBAsyncClient, *, source_type: str, source_id: int | str, reason: str) -> int:
    """Cancel the source's vouchers that are still unredeemed; returns how many were cancelled."""
    return await Voucher.filter(
        source_type=source_type, source_id=str(source_id), status=VoucherStatus.issued
    ).using_db(conn).update(status=VoucherStatus.cancelled, cancelled_at=clock.now(), cancel_reason=reason[:255])


async def cancel_voucher(conn: BaseDBAsyncClient, voucher_id: int, reason: str) -> bool:
    """Cancel one unredeemed, unexpired voucher; False when it was no longer `issued` (someone else won)."""
    now = clock.now()
    changed = await Voucher.filter(
        id=voucher_id, status=VoucherStatus.issued, valid_until__gt=now
    ).using_db(conn).update(status=VoucherStatus.cancelled, cancelled_at=now, cancel_reason=reason[:255])
    return changed == 1


async def find_voucher(conn: BaseDBAsyncClient, code: str) -> Voucher:
    code = normalise_code(code)
    if len(code) > _CODE_COLUMN_LENGTH:  # no such code can exist (and the ORM would refuse the filter)
        raise VoucherNotFound()
    voucher = await Voucher.get_or_none(code=code, using_db=conn)
    if voucher is None:
        raise VoucherNotFound()
    return voucher


def refusal(voucher: Voucher, branch_id: int | None, now: datetime) -> Exception | None:
    """Why this voucher cannot be redeemed now at this branch (None if it can)."""
    if voucher.status == VoucherStatus.redeemed:
        return VoucherAlreadyRedeemed(redeemed_at=voucher.redeemed_at.isoformat() if voucher.redeemed_at else None)
    if voucher.status == VoucherStatus.cancelled:
        return VoucherCancelled()
    if voucher.status == VoucherStatus.expired or voucher.valid_until <= now:
        return VoucherExpired(valid_until=voucher.valid_until.isoformat())
    if branch_id is not None and voucher.branch_ids and branch_id not in voucher.branch_ids:
        return VoucherWrongBranch(branch_ids=voucher.branch_ids)
    return None


async def redeem_voucher(conn: BaseDBAsyncClient, *, code: str, branch_id: int, staff_id: int) -> Voucher:
    """Redeem (核销) once: a conditional update from `issued`, so of concurrent attempts exactly one wins."""
    voucher = await find_voucher(conn, code)
    now = clock.now()
    problem = refusal(voucher, branch_id, now)
    if problem is not None:
        raise problem
    changed = await Voucher.filter(
        id=voucher.id, status=VoucherStatus.issued, valid_until__gt=now
    ).using_db(conn).update(
        status=VoucherStatus.redeemed, redeemed_at=now, redeemed_branch_id=branch_id, redeemed_by_staff_id=staff_id
    )
    voucher = await Voucher.filter(id=voucher.id).using_db(conn).select_for_update().get()
    if changed != 1:
        raise refusal(voucher, branch_id, now) or VoucherAlreadyRedeemed()
    return voucher


async def expire_due_vouchers(conn: BaseDBAsyncClient, *, limit: int = 500) -> list[Voucher]:
    """Mark vouchers past their date as expired (conditionally, so two runs expire each once)."""
    now = clock.now()
    due = await Voucher.filter(status=VoucherStatus.issued, valid_until__lte=now).using_db(conn).order_by(
        "id"
    ).limit(limit)
    expired = []
    for voucher in due:
        changed = await Voucher.filter(id=voucher.id, status=VoucherStatus.issued).using_db(conn).update(
            status=VoucherStatus.expired, expired_at=now
        )
        if changed == 1:
            voucher.status = VoucherStatus.expired
            expired.append(voucher)
    return expired
