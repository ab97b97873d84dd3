"""Jobs of the referral room: consumption events from the points room, and releasing rewards after the hold."""

from __future__ import annotations

from datetime import datetime, timezone
from functools import partial
from typing import Any

import structlog
from arq import cron, func

from campaigns.referrals import payouts, rewards
from campaigns.referrals.models import RewardKind
from kernel.jobs import run_job_transaction

log = structlog.get_logger(__name__)

# Rows per release transaction. Cash rewards are one UPDATE per chunk, so big chunks save commits
# (docs/benchmarks.md); each points reward writes the ledger under its owner's lock, so its
# chunks stay small to keep those locks short.
CASH_CHUNK = 5000
POINTS_CHUNK = 100


def _parse_instant(text: str) -> datetime:
    instant = datetime.fromisoformat(text)
    # The contract sends an ISO string; a naive one is taken as UTC rather than guessed local.
    return instant if instant.tzinfo else instant.replace(tzinfo=timezone.utc)


async def consumption_recorded(
    ctx: dict[str, Any], consumption_id: int, customer_id: int, amount_fen: int, occurred_at_iso: str
) -> int:
    """A consumption was recorded (points room): qualify the customer's referral. Returns rewards created."""
    created = await run_job_transaction(
        ctx,
        lambda conn: rewards.record_qualifying_consumption(
            conn,
            consumption_id=int(consumption_id),
            customer_id=int(customer_id),
            amount_fen=int(amount_fen),
            occurred_at=_parse_instant(occurred_at_iso),
        ),
        attempts=1,
    )
    return len(created)


async def consumption_refunded(ctx: dict[str, Any], consumption_id: int, customer_id: int, refunded_fen: int) -> int:
    """A consumption was refunded (points room): cancel or claw back the rewards it earned."""
    touched = await run_job_transaction(
        ctx,
        lambda conn: payouts.record_refund(
            conn, consumption_id=int(consumption_id), customer_id=int(customer_id), refunded_fen=int(refunded_fen)
        ),
        attempts=1,
    )
    return len(touched)


async def release_due_rewards(ctx: dict[str, Any]) -> int:
    """Pending rewards whose hold has ended become payable (cash) or are credited (points).

    One short transaction per chunk, so a crash loses at most a chunk's work, which the next run
    (cron or a retry) redoes. Returns how many rewards this run moved; a racing run moves the rest.
    """
    moved_total = 0
    for kind, chunk in ((RewardKind.cash, CASH_CHUNK), (RewardKind.points, POINTS_CHUNK)):
        release_chunk = partial(payouts.release_due_chunk, kind=kind, limit=chunk)
        # Guards against spinning: a racing worker can make a chunk move nothing a few times, never forever.
        idle_rounds = 0
        while idle_rounds < 20:
            # A racing worker may hold the rows (a deadlock): the chunk runs again and its select skips what
            # the other moved; past the quick retries arq runs the job again later.
            scanned, moved = await run_job_transaction(ctx, release_chunk, attempts=10)
            if scanned == 0:
                break
            moved_total += moved
            idle_rounds = 0 if moved else idle_rounds + 1
    if moved_total:
        log.info("referrals.rewards_released", count=moved_total)
    return moved_total


FUNCTIONS = [
    func(consumption_recorded, name="referrals.consumption_recorded", timeout=60, max_tries=5),
    func(consumption_refunded, name="referrals.consumption_refunded", timeout=60, max_tries=5),
    # Long timeout: a backlog of 100k rewards is released in one run (see docs/benchmarks.md).
    func(release_due_rewards, name="referrals.release_due_rewards", timeout=1800, max_tries=3),
]
CRON_JOBS = [
    cron(
        release_due_rewards,
        name="cron:referrals.release_due_rewards",
        minute=set(range(0, 60, 10)),
        run_at_startup=True,
        timeout=1800,
    )
]
