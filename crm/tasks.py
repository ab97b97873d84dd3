"""Jobs of the CRM room: the nightly scoring (RFM, rule tags, segments), outreach runs, birthday gifts,
consultation follow-ups and the staff referral rewards. Each transaction is one chunk; every job is safe
to run twice."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from functools import partial
from typing import Any

import structlog
from arq import cron, func

from crm import acquisition, occasions, outreach, rfm, segments, tags
from crm.settings import get_crm_settings
from kernel import clock
from kernel.errors import DomainError
from kernel.jobs import run_job_transaction

log = structlog.get_logger(__name__)


async def score_customers(ctx: dict[str, Any], as_of_iso: str | None = None) -> int:
    """RFM for every customer, one transaction per id chunk. Returns customers scored."""
    as_of = date.fromisoformat(as_of_iso) if as_of_iso else None
    scoring = await run_job_transaction(ctx, rfm.scoring_for, as_of)
    chunk = get_crm_settings().scoring_chunk
    after, scored = 0, 0
    while True:
        ids = await run_job_transaction(ctx, rfm.customer_id_chunk, after, chunk)
        if not ids:
            break
        scored += await run_job_transaction(ctx, partial(_score, scoring=scoring, first=ids[0], last=ids[-1]))
        after = ids[-1]
    log.info("crm.scored", customers=scored, as_of=scoring.as_of.isoformat())
    return scored


async def _score(conn, *, scoring, first: int, last: int) -> int:
    return await rfm.score_chunk(conn, scoring, first, last)


async def apply_rule_tags(ctx: dict[str, Any]) -> int:
    chunk = get_crm_settings().scoring_chunk
    today = clock.local_today()
    after, changed = 0, 0
    while True:
        ids = await run_job_transaction(ctx, rfm.customer_id_chunk, after, chunk)
        if not ids:
            break
        changed += await run_job_transaction(
            ctx, partial(_rule_tags, first=ids[0], last=ids[-1], today=today))
        after = ids[-1]
    return changed


async def _rule_tags(conn, *, first: int, last: int, today: date) -> int:
    return await tags.apply_rule_tags_chunk(conn, first, last, today)


async def recompute_segment(ctx: dict[str, Any], segment_id: int) -> tuple[int, int]:
    try:
        return await run_job_transaction(ctx, lambda conn: segments.recompute(conn, int(segment_id)))
    except DomainError:  # deleted since it was queued
        return 0, 0


async def recompute_segments(ctx: dict[str, Any]) -> int:
    ids = await run_job_transaction(ctx, segments.live_segment_ids)
    for segment_id in ids:
        await recompute_segment(ctx, segment_id)
    return len(ids)


async def nightly(ctx: dict[str, Any]) -> dict[str, int]:
    """Scores, then rule tags (the spend band reads today's scores), then segments (they read both)."""
    return {
        "scored": await score_customers(ctx),
        "rule_tags_changed": await apply_rule_tags(ctx),
        "segments": await recompute_segments(ctx),
    }


async def run_outreach(ctx: dict[str, Any], outreach_id: int) -> str:
    """Take the members, then handle chunks and send the claimed messages after each chunk's commit."""
    outreach_id = int(outreach_id)
    taken = await run_job_transaction(ctx, lambda conn: outreach.take_members(conn, outreach_id))
    if taken is None:
        return "not_running"
    limit = get_crm_settings().outreach_chunk
    miniprogram = ctx["miniprogram"]
    while True:
        quiet_end = outreach.quiet_until(clock.now()) if taken.template_id else None
        if quiet_end is not None:
            # No marketing message at night (clinic time): pick the run up again in the morning.
            await run_job_transaction(ctx, lambda conn: outreach.defer_run(conn, outreach_id, quiet_end))
            log.info("crm.outreach_deferred", outreach_id=outreach_id, until=quiet_end.isoformat())
            return "deferred"
        handled, claimed = await run_job_transaction(
            ctx, lambda conn: outreach.handle_chunk(conn, outreach_id, limit=limit))
        if not handled:
            break
        results: list[tuple[int, bool, str]] = []
        for message in claimed:
            try:
                await miniprogram.send_subscribe_message(
                    message.openid, taken.template_id, {k: str(v) for k, v in taken.message_data.items()},
                    page=taken.message_page,
                )
                results.append((message.recipient_id, True, ""))
            except DomainError as exc:
                errcode = exc.detail.get("errcode")
                results.append((message.recipient_id, False, f"wechat_{errcode or exc.code}"))
                if errcode == 43101:  # the customer has no subscription left for this template
                    await run_job_transaction(ctx, lambda conn, rid=message.recipient_id: outreach.drop_consent(conn, rid))
        if results:
            await run_job_transaction(ctx, lambda conn: outreach.mark_sent(conn, results))
    await run_job_transaction(ctx, lambda conn: outreach.finish_if_done(conn, outreach_id))
    return "done"


async def birthday_gifts(ctx: dict[str, Any]) -> dict[str, int]:
    """Returns (and logs) what the run gave: customers given a gift, vouchers, coupons, and those given nothing."""
    after, run = 0, occasions.BirthdayRun()
    while True:
        last, chunk = await run_job_transaction(ctx, lambda conn: occasions.birthday_chunk(conn, after, 500))
        run.add(chunk)
        if not last:
            summary = asdict(run)
            log.info("crm.birthday_gifts", **summary)
            return summary
        after = last


async def consultation_follow_ups(ctx: dict[str, Any]) -> int:
    created = 0
    while True:
        looked, n = await run_job_transaction(ctx, lambda conn: occasions.consultation_chunk(conn))
        created += n
        if not looked:
            return created


async def visit_completed(ctx: dict[str, Any], booking_id: int) -> int | None:
    """Written by name by the booking room when the front desk completes a visit: the after-visit coupon."""
    return await run_job_transaction(ctx, occasions.visit_coupon, int(booking_id))


async def staff_rewards(ctx: dict[str, Any]) -> dict[str, int]:
    accrued = decided = 0
    while n := await run_job_transaction(ctx, lambda conn: acquisition.accrue_staff_rewards_chunk(conn)):
        accrued += n
    while n := await run_job_transaction(ctx, lambda conn: acquisition.release_staff_rewards_chunk(conn)):
        decided += n
    # Consumptions the scan met too late are never rewarded automatically: each is recorded once as an expired
    # reward (finance sees it in the staff-reward list) and warned about by the run that recorded it, not by every
    # run after (docs/crm.md).
    horizon = acquisition.staff_scan_horizon()
    expired = 0
    while True:
        looked, recorded = await run_job_transaction(
            ctx, lambda conn: acquisition.expire_staff_rewards_outside_horizon_chunk(conn))
        expired += recorded
        if not looked:
            break
    if expired:
        log.warning("crm.staff_rewards_outside_horizon", consumptions=expired, acquired_before=horizon.isoformat())
    return {"rewards_accrued": accrued, "rewards_decided": decided, "rewards_expired": expired}


FUNCTIONS = [
    func(nightly, name="crm.nightly", timeout=3600, max_tries=3),
    func(score_customers, name="crm.score_customers", timeout=3600, max_tries=3),
    func(recompute_segment, name="crm.recompute_segment", timeout=600, max_tries=3),
    func(run_outreach, name="crm.run_outreach", timeout=3600, max_tries=5),
    func(birthday_gifts, name="crm.birthday_gifts", timeout=1800, max_tries=3),
    func(consultation_follow_ups, name="crm.consultation_follow_ups", timeout=600, max_tries=3),
    func(staff_rewards, name="crm.staff_rewards", timeout=1800, max_tries=3),
    func(visit_completed, name="crm.visit_completed", timeout=60, max_tries=5),
]
# Cron times are UTC: 18:50 UTC is 02:50 in Shanghai, after the day's last consumptions.
CRON_JOBS = [
    cron(nightly, name="cron:crm.nightly", hour={18}, minute={50}, run_at_startup=False, timeout=3600),
    cron(birthday_gifts, name="cron:crm.birthday_gifts", hour={17}, minute={20}, run_at_startup=True, timeout=1800),
    cron(consultation_follow_ups, name="cron:crm.consultation_follow_ups", hour={0}, minute={30},
         run_at_startup=False, timeout=600),
    cron(staff_rewards, name="cron:crm.staff_rewards", minute={25}, run_at_startup=False, timeout=1800),
]
