"""Jobs of the kernel: housekeeping of the outbox."""

from __future__ import annotations

from typing import Any

from arq import cron, func

from kernel.outbox.service import prune_delivered


async def prune_outbox(ctx: dict[str, Any]) -> int:
    """Delete outbox rows delivered more than a week ago (they are only kept for inspection)."""
    return await prune_delivered()


FUNCTIONS = [func(prune_outbox, name="kernel.prune_outbox", timeout=300, max_tries=3)]
CRON_JOBS = [cron(prune_outbox, name="cron:kernel.prune_outbox", hour={19}, minute={17}, run_at_startup=False)]
