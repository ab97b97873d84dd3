"""Jobs of the kernel: housekeeping of the outbox."""

from __future__ import annotations

from typing import Any

from arq import cron, func

from kernel.jobs import run_job_transaction
from kernel.outbox.service import prune_delivered
from kernel.privacy import erase_customer as erase_customer_data


async def prune_outbox(ctx: dict[str, Any]) -> int:
    """Delete outbox rows delivered more than a week ago (they are only kept for inspection)."""
    return await prune_delivered()


async def erase_customer(ctx: dict[str, Any], customer_id: int) -> bool:
    """Carry out a customer's erasure request (PIPL) in one transaction; a second run does nothing."""
    return await run_job_transaction(ctx, erase_customer_data, customer_id)


FUNCTIONS = [
    func(prune_outbox, name="kernel.prune_outbox", timeout=300, max_tries=3),
    func(erase_customer, name="kernel.erase_customer", timeout=120, max_tries=5),
]
CRON_JOBS = [cron(prune_outbox, name="cron:kernel.prune_outbox", hour={19}, minute={17}, run_at_startup=False)]
