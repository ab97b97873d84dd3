"""Jobs of the reports room: the fold of every summary family (every few minutes) and the nightly rebuild.

Each chunk is one transaction, opened here; a killed worker redoes at most one chunk, and a second run
folds nothing twice (the cursors move in the chunk's transaction).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from arq import cron, func
from tortoise.backends.base.client import BaseDBAsyncClient

from kernel.jobs import run_job_transaction
from reports import summaries

log = structlog.get_logger(__name__)

# Append-only families: run chunk after chunk until one finds nothing new.
_INCREMENTAL: list[tuple[str, Callable[[BaseDBAsyncClient], Awaitable[int]]]] = [
    ("consumption", summaries.fold_consumptions),
    ("consumption_refund", summaries.fold_consumption_refunds),
    ("acquisition", summaries.fold_acquisitions),
    ("survey", summaries.fold_surveys),
    ("points", summaries.fold_points),
    ("voucher", summaries.fold_vouchers),
    # Refolded families also follow a cursor of new rows (the days they fall on), one chunk at a time.
    ("visit", summaries.fold_visits),
    ("mall", summaries.fold_mall),
]
# Families refolded whole in one transaction each run.
_ONCE: list[tuple[str, Callable[[BaseDBAsyncClient], Awaitable[Any]]]] = [
    ("top_share", summaries.fold_top_share),
    ("campaign", summaries.fold_campaigns),
    ("rfm", summaries.fold_rfm),
    ("referral_reward", summaries.fold_referral_rewards),
    ("liability", summaries.snapshot_liability),
]


async def fold(ctx: dict[str, Any]) -> dict[str, int]:
    """Bring every summary table up to date. Returns source rows (or refolds) per family."""
    done: dict[str, int] = {}
    for name, step in _INCREMENTAL:
        total = 0
        while (n := await run_job_transaction(ctx, step)) > 0:
            total += n
        done[name] = total
    for name, step in _ONCE:
        result = await run_job_transaction(ctx, step)
        done[name] = result if isinstance(result, int) else 1
    log.info("reports.folded", **done)
    return done


async def rebuild(ctx: dict[str, Any]) -> dict[str, int]:
    """Recompute every summary table with bulk SQL (nightly; also the reference the tests and bench use)."""
    result = await run_job_transaction(ctx, summaries.rebuild)
    log.info("reports.rebuilt", **result)
    return result


FUNCTIONS = [
    func(fold, name="reports.fold", timeout=1800, max_tries=3),
    func(rebuild, name="reports.rebuild", timeout=3600, max_tries=2),
]
# Cron times are UTC. The fold every five minutes; the rebuild at 19:10 UTC = 03:10 in Shanghai, after
# the CRM's nightly scoring (02:50), so the day's RFM sizes and movements are in.
CRON_JOBS = [
    cron(fold, name="cron:reports.fold", minute=set(range(0, 60, 5)), run_at_startup=True, timeout=1800),
    cron(rebuild, name="cron:reports.rebuild", hour={19}, minute={10}, run_at_startup=False, timeout=3600),
]
