"""Demo data for the embedded stack: each room's `demo.load(conn)`, run in order, each idempotent."""

from __future__ import annotations

import importlib
import importlib.util

import structlog

from kernel.db import transaction

log = structlog.get_logger(__name__)

_DEMO_MODULES = ["kernel.demo", "booking.demo", "points_mall.demo", "campaigns.demo"]


async def load_demo_data() -> None:
    for name in _DEMO_MODULES:
        if importlib.util.find_spec(name) is None:
            continue
        module = importlib.import_module(name)
        async with transaction() as conn:
            await module.load(conn)
        log.info("demo.loaded", room=name)
