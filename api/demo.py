"""Demo data for the embedded stack: each room's `demo.load(conn)`, run in order, each idempotent."""

from __future__ import annotations

import structlog

from tortoise.backends.base.client import BaseDBAsyncClient

from kernel.db import run_in_transaction
from kernel.modules import import_present

log = structlog.get_logger(__name__)

_DEMO_MODULES = ["kernel.demo", "booking.demo", "points_mall.demo", "campaigns.demo", "campaigns.referrals.demo"]


async def load_demo_data() -> None:
    for module in import_present(_DEMO_MODULES):
        async def work(conn: BaseDBAsyncClient):
            await module.load(conn)
        await run_in_transaction(work)
        log.info("demo.loaded", room=module.__name__)
