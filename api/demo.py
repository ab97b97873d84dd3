"""Demo data for the embedded stack: each room's `demo.load(conn)`, run in order, each idempotent."""

from __future__ import annotations

import structlog

from kernel.db import transaction
from kernel.modules import import_present

log = structlog.get_logger(__name__)

_DEMO_MODULES = ["kernel.demo", "booking.demo", "points_mall.demo", "campaigns.demo", "campaigns.referrals.demo", "crm.demo"]


async def load_demo_data() -> None:
    for module in import_present(_DEMO_MODULES):
        async with transaction() as conn:
            await module.load(conn)
        log.info("demo.loaded", room=module.__name__)
