"""Demo data for the embedded stack: each room's `demo.load(conn)`, run in order, each idempotent."""

from __future__ import annotations

import structlog

from booking import demo as booking_demo
from campaigns import demo as groupbuy_demo
from campaigns.referrals import demo as referral_demo
from crm import demo as crm_demo
from kernel import demo as kernel_demo
from kernel.db import run_in_transaction
from orders import demo as orders_demo
from points_mall import demo as points_demo

log = structlog.get_logger(__name__)

# In dependency order: staff and customers, then branches and services, points rules, money products,
# campaigns, referrals, then the CRM (tags, segments, channels; it tags the demo customers).
DEMO_MODULES = [kernel_demo, booking_demo, points_demo, orders_demo, groupbuy_demo, referral_demo, crm_demo]


async def load_demo_data() -> None:
    import rooms
    from kernel.settings import get_settings, refuse_demo_data

    # Here, where the rows are written, so no caller (the CLI, a script, a future start-up path) can put live
    # demo campaigns, prices and stored value before real customers and into finance's figures.
    refuse_demo_data(get_settings())

    rooms.install()  # the demo buys from the catalogue: the line kinds must be registered (idempotent)
    for module in DEMO_MODULES:
        await run_in_transaction(module.load)
        log.info("demo.loaded", room=module.__name__)
