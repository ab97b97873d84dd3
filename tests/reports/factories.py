"""Factories of the reports tests: consumptions and refunds through the points room's contract at a given
instant, acquisitions at a given instant, and the fold job run as the worker runs it."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from crm.models import Acquisition
from kernel import clock
from kernel.db import transaction
from points_mall import service as points
from reports import tasks

SH = ZoneInfo("Asia/Shanghai")


def local(y: int, m: int, d: int, hh: int = 12, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, ss, tzinfo=SH)


async def consume(customer_id: int, amount_fen: int, at: datetime, branch_id: int | None) -> str:
    """A paid consumption recorded at `at` (the points room stamps it with the clock); returns its ref."""
    ref = "rep-" + secrets.token_hex(8)
    clock.set_now(at)
    async with transaction() as conn:
        await points.record_consumption(conn, customer_id=customer_id, amount_fen=amount_fen, source="front_desk",
                                        external_ref=ref, branch_id=branch_id)
    return ref


async def refund(external_ref: str, refunded_fen: int, at: datetime) -> None:
    clock.set_now(at)
    async with transaction() as conn:
        await points.refund_consumption(conn, external_ref=external_ref, refunded_fen=refunded_fen,
                                        ref="rep-refund-" + secrets.token_hex(6))


async def acquire(customer_id: int, kind: str, at: datetime) -> None:
    await Acquisition.create(customer_id=customer_id, kind=kind, acquired_at=at)


async def fold(now: datetime) -> dict[str, Any]:
    """Run the fold job (as the cron does) with the clock at `now`."""
    clock.set_now(now)
    return await tasks.fold({})
