"""Outreach (触达) to a segment: vouchers issued once per outreach and customer within stock, and subscribe
messages only with consent, under the frequency cap, outside quiet hours, never to the opted-out or the holdout.

Stages, each its own short transaction run by the `crm.run_outreach` job:
1. take the members: recompute the segment, write one recipient row per member, holdout drawn by a hash
   of (outreach, customer) so every run agrees;
2. handle a chunk: lock the chunk's pending recipients (SKIP LOCKED: racing workers take other chunks),
   their marketing profiles and consents; issue vouchers (stock counted on the locked outreach row) and
   claim messages (consent credit spent, cap stamped); mark the recipients handled;
3. after the commit, send the claimed messages, then mark each sent or failed.
A crash between 2 and 3 loses those messages rather than sending them twice (at most once, as reminders).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from crm import partners, segments
from crm.errors import InvalidOutreach, OutreachNotFound, OutreachState, SegmentNotFound, UnknownMessageTemplate
from crm.models import (
    MarketingProfile,
    MessageConsent,
    Outreach,
    OutreachRecipient,
    OutreachStatus,
    RecipientState,
)
from crm.settings import get_crm_settings
from kernel import clock, sql
from kernel.identity.models import Customer
from kernel.outbox import enqueue

MAX_HOLDOUT_BP = 5000


def in_holdout(outreach_id: int, customer_id: int, holdout_bp: int) -> bool:
    """Deterministic draw: the same customer is in (or out of) the same outreach's holdout every time."""
    if holdout_bp <= 0:
        return False
    digest = hashlib.sha256(f"outreach:{outreach_id}:{customer_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 10_000 < holdout_bp


def quiet_until(now: datetime) -> datetime | None:
    """The end of the quiet hours (clinic time) if `now` is inside them, else None."""
    settings = get_crm_settings()
    zone = clock.clinic_zone()
    local = now.astimezone(zone)
    start, end = settings.quiet_start_hour, settings.quiet_end_hour
    hour = local.hour
    quiet = (start <= hour or hour < end) if start > end else (start <= hour < end)
    if not quiet:
        return None
    day = local.date() if hour < end else local.date() + timedelta(days=1)
    return datetime.combine(day, time(end), tzinfo=zone)


# --- configuration --------------------------------------------------------------------------------

async def create_outreach(conn: BaseDBAsyncClient, values: dict[str, Any], *, staff_id: int) -> Outreach:
    await segments.get_segment(conn, values["segment_id"])
    gives = values.get("voucher_title") or values.get("coupon_template_id") is not None
    if not gives and not values.get("template_id"):
        raise InvalidOutreach("An outreach gives a voucher or a coupon, sends a message, or several.",
                              field="voucher_title")
    if values.get("template_id") and values["template_id"] not in get_crm_settings().outreach_template_ids:
        raise UnknownMessageTemplate(field="template_id", template_id=values["template_id"])
    if values.get("coupon_template_id") is not None:
        problem = await partners.coupon_template_problem(conn, values["coupon_template_id"])
        if problem:
            raise InvalidOutreach(problem, field="coupon_template_id")
    if not 0 <= values.get("holdout_bp", 0) <= MAX_HOLDOUT_BP:
        raise InvalidOutreach(f"The holdout is 0 to {MAX_HOLDOUT_BP} basis points.", field="holdout_bp")
    stock = values.get("voucher_stock")
    if stock is not None and stock < 0:
        raise InvalidOutreach("Stock cannot be negative.", field="voucher_stock")
    return await Outreach.create(**values, created_by_staff_id=staff_id, created_at=clock.now(), using_db=conn)


def _template_sent(outreach: Outreach) -> bool:
    """The outreach sends no message, or its template is still one the clinic sends (`CRM_OUTREACH_TEMPLATE_IDS`,
    read at every use: the operator may remove a template while an outreach is scheduled or running)."""
    return not outreach.template_id or outreach.template_id in get_crm_settings().outreach_template_ids


async def get_outreach(conn: BaseDBAsyncClient, outreach_id: int, *, for_update: bool = False) -> Outreach:
    query = Outreach.filter(id=outreach_id).using_db(conn)
    if for_update:
        query = query.select_for_update()
    outreach = await query.first()
    if outreach is None:
        raise OutreachNotFound()
    return outreach


async def schedule(conn: BaseDBAsyncClient, outreach_id: int, *, at: datetime | None) -> Outreach:
    """Start now (at=None) or at a time: the run job goes through the outbox, after this commit."""
    outreach = await get_outreach(conn, outreach_id, for_update=True)
    if outreach.status != OutreachStatus.draft:
        raise OutreachState(status=outreach.status.value)
    if not _template_sent(outreach):
        # Taken out of the clinic's list since the draft was saved: staff learn it now, not from a run of skips.
        raise UnknownMessageTemplate(field="template_id", template_id=outreach.template_id)
    run_at = at if at and at > clock.now() else None
    outreach.status = OutreachStatus.scheduled
    outreach.scheduled_at = run_at or clock.now()
    await outreach.save(using_db=conn, update_fields=["status", "scheduled_at"])
    await enqueue(conn, "crm.run_outreach", outreach.id, run_at=run_at)
    return outreach


async def cancel(conn: BaseDBAsyncClient, outreach_id: int) -> Outreach:
    changed = await Outreach.filter(
        id=outreach_id, status__in=[OutreachStatus.draft, OutreachStatus.scheduled]
    ).using_db(conn).update(status=OutreachStatus.cancelled, finished_at=clock.now())
    outreach = await get_outreach(conn, outreach_id)
    if not changed:
        raise OutreachState(status=outreach.status.value)
    return outreach


# --- stage 1: members -------------------------------------------------------------------------------

async def take_members(conn: BaseDBAsyncClient, outreach_id: int) -> Outreach | None:
    """scheduled → running with its recipients written; None when the outreach is not to run (cancelled, done)."""
    outreach = await get_outreach(conn, outreach_id, for_update=True)
    if outreach.status not in (OutreachStatus.scheduled, OutreachStatus.running):
        return None
    if outreach.members_taken:
        return outreach
    try:
        await segments.recompute(conn, outreach.segment_id)
    except SegmentNotFound:
        # The segment was deleted after scheduling: nobody to reach, so the outreach ends as cancelled
        # rather than failing every retry of its job and staying "scheduled" for ever.
        outreach.status = OutreachStatus.cancelled
        outreach.finished_at = clock.now()
        await outreach.save(using_db=conn, update_fields=["status", "finished_at"])
        return None
    segment = await segments.get_segment(conn, outreach.segment_id)
    members = await segments.member_ids(conn, segment.rules)
    rows = [
        OutreachRecipient(outreach_id=outreach.id, customer_id=c, holdout=in_holdout(outreach.id, c, outreach.holdout_bp))
        for c in members
    ]
    await OutreachRecipient.bulk_create(rows, ignore_conflicts=True, batch_size=2000, using_db=conn)
    outreach.status = OutreachStatus.running
    outreach.members_taken = True
    outreach.started_at = clock.now()
    await outreach.save(using_db=conn, update_fields=["status", "members_taken", "started_at"])
    return outreach


# --- stage 2: one chunk -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Claimed:
    recipient_id: int
    openid: str


async def _profiles(conn: BaseDBAsyncClient, ids: list[int]) -> dict[int, MarketingProfile]:
    await MarketingProfile.bulk_create([MarketingProfile(customer_id=c) for c in ids], ignore_conflicts=True,
                                       using_db=conn)
    rows = await MarketingProfile.filter(customer_id__in=ids).using_db(conn).select_for_update().order_by("customer_id")
    return {p.customer_id: p for p in rows}


async def handle_chunk(conn: BaseDBAsyncClient, outreach_id: int, *, limit: int) -> tuple[int, list[Claimed]]:
    """Handle up to `limit` pending recipients; returns (handled, messages claimed to send after commit)."""
    outreach = await get_outreach(conn, outreach_id, for_update=True)
    if outreach.status != OutreachStatus.running:
        return 0, []
    recipients = await (
        OutreachRecipient.filter(outreach_id=outreach_id, state=RecipientState.pending)
        .using_db(conn).order_by("id").limit(limit).select_for_update(skip_locked=True)
    )
    if not recipients:
        return 0, []
    now = clock.now()
    settings = get_crm_settings()
    ids = sorted(r.customer_id for r in recipients)
    live = dict(await Customer.filter(id__in=ids, deleted_at=None).using_db(conn).values_list("id", "openid"))
    profiles = await _profiles(conn, ids)
    # A template taken out of the clinic's list since the outreach was scheduled sends nothing more: each
    # recipient is skipped `template_off` (the gift is still given), and no credit or weekly cap is spent.
    template_off = not _template_sent(outreach)
    consents: dict[int, MessageConsent] = {}
    if outreach.template_id and not template_off:
        consents = {c.customer_id: c for c in await MessageConsent.filter(
            customer_id__in=ids, template_id=outreach.template_id
        ).using_db(conn).select_for_update().order_by("customer_id")}
    busy = (await partners.customers_with_upcoming_booking(conn, ids, now)) if outreach.skip_upcoming_booking else set()
    cap_since = now - timedelta(days=settings.marketing_cap_days)
    valid_until = now + timedelta(days=outreach.voucher_valid_days)
    # The stock counts recipients given a gift (the voucher, the coupon or both), on the locked outreach row.
    given = max(outreach.vouchers_issued, outreach.coupons_issued)
    stock_left = None if outreach.voucher_stock is None else outreach.voucher_stock - given
    issued = coupons_issued = 0
    claimed: list[Claimed] = []
    for r in recipients:
        r.state, r.handled_at = RecipientState.handled, now
        fields = ["state", "handled_at"]
        profile = profiles.get(r.customer_id)
        if r.holdout:
            pass
        elif r.customer_id not in live:
            r.skip_reason = "erased"
        elif profile is None or profile.marketing_opt_out:
            # PIPL: an opted-out customer gets no marketing at all, neither voucher nor message.
            r.skip_reason = "opted_out"
        elif r.customer_id in busy:
            r.skip_reason = "upcoming_booking"
        else:
            in_stock = stock_left is None or stock_left > 0
            if outreach.voucher_title:
                if in_stock:
                    r.voucher_id = await partners.issue_outreach_voucher(
                        conn, outreach_id=outreach.id, customer_id=r.customer_id, title=outreach.voucher_title,
                        valid_until=valid_until, service_id=outreach.voucher_service_id,
                    )
                    r.voucher_outcome = "issued"
                    issued += 1
                else:
                    r.voucher_outcome = "no_stock"
                fields += ["voucher_id", "voucher_outcome"]
            if outreach.coupon_template_id is not None:
                if in_stock:
                    r.coupon_id, why_not = await partners.issue_outreach_coupon(
                        conn, outreach_id=outreach.id, customer_id=r.customer_id,
                        template_id=outreach.coupon_template_id)
                    r.coupon_outcome = "issued" if r.coupon_id is not None else why_not
                    coupons_issued += r.coupon_id is not None
                else:
                    r.coupon_outcome = "no_stock"
                fields += ["coupon_id", "coupon_outcome"]
            if stock_left is not None and (r.voucher_id is not None or r.coupon_id is not None):
                stock_left -= 1
            if outreach.template_id:
                consent = consents.get(r.customer_id)
                if template_off:
                    r.message_outcome, r.skip_reason = "skipped", "template_off"
                elif profile.last_marketing_at is not None and profile.last_marketing_at > cap_since:
                    r.message_outcome, r.skip_reason = "skipped", "over_cap"
                elif consent is None or consent.credits < 1:
                    r.message_outcome, r.skip_reason = "skipped", "no_consent"
                else:
                    consent.credits -= 1
                    await consent.save(using_db=conn, update_fields=["credits"])
                    profile.last_marketing_at = now
                    await profile.save(using_db=conn, update_fields=["last_marketing_at"])
                    r.message_outcome = "claimed"
                    claimed.append(Claimed(r.id, live[r.customer_id]))
                fields.append("message_outcome")
        if r.skip_reason:
            fields.append("skip_reason")
        await r.save(using_db=conn, update_fields=sorted(set(fields)))
    if issued or coupons_issued:
        outreach.vouchers_issued += issued
        outreach.coupons_issued += coupons_issued
        await outreach.save(using_db=conn, update_fields=["vouchers_issued", "coupons_issued"])
    return len(recipients), claimed


async def mark_sent(conn: BaseDBAsyncClient, results: list[tuple[int, bool, str]]) -> None:
    now = clock.now()
    for recipient_id, ok, reason in results:
        await OutreachRecipient.filter(id=recipient_id, message_outcome="claimed").using_db(conn).update(
            message_outcome="sent" if ok else "failed", sent_at=now if ok else None,
            **({} if ok else {"skip_reason": reason[:32]}),
        )


async def finish_if_done(conn: BaseDBAsyncClient, outreach_id: int) -> bool:
    if await OutreachRecipient.filter(outreach_id=outreach_id, state=RecipientState.pending).using_db(conn).exists():
        return False
    return bool(await Outreach.filter(id=outreach_id, status=OutreachStatus.running).using_db(conn).update(
        status=OutreachStatus.done, finished_at=clock.now()))


async def defer_run(conn: BaseDBAsyncClient, outreach_id: int, until: datetime) -> None:
    await enqueue(conn, "crm.run_outreach", outreach_id, run_at=until)


# --- consent and opt-out (reported by the mini-program) ----------------------------------------------

async def record_acceptances(conn: BaseDBAsyncClient, customer_id: int, accepted: list[str]) -> None:
    """wx.requestSubscribeMessage results: each accepted template allows one more message (一次性订阅), up to
    `CRM_SUBSCRIPTION_CREDITS_MAX` per template. Beyond it the report is taken and the credit silently stays at
    the cap: the customer did press "allow", so the mini-program gets no error, and it reads the real count in
    the answer (a count above the cap, from before it was lowered, is kept, never raised).

    Only the clinic's templates (`CRM_OUTREACH_TEMPLATE_IDS`) are taken: any other id is refused, naming its
    place in the report, before anything is written (each id would otherwise be a new row, without end).

    One upsert per template: it locks the row exclusively at once, so reports racing each other queue on it
    (an INSERT IGNORE followed by a locking read deadlocked them: both held the shared duplicate-key lock)."""
    settings = get_crm_settings()
    for i, template_id in enumerate(accepted):
        if template_id not in settings.outreach_template_ids:
            raise UnknownMessageTemplate(field=f"accepted[{i}]", template_id=template_id)
    now = clock.now()
    cap = settings.subscription_credits_max
    first = min(1, cap)
    for template_id in sorted(set(accepted)):
        if sql.is_sqlite(conn):
            upsert = ("INSERT INTO crm_message_consent (customer_id, template_id, credits) VALUES (%s, %s, %s) "
                      "ON CONFLICT (customer_id, template_id) DO UPDATE SET "
                      "credits = MAX(credits, MIN(credits + 1, %s))")
        else:
            upsert = ("INSERT INTO crm_message_consent (customer_id, template_id, credits) VALUES (%s, %s, %s) "
                      "ON DUPLICATE KEY UPDATE credits = GREATEST(credits, LEAST(credits + 1, %s))")
        await sql.execute(conn, upsert, [customer_id, template_id, first, cap])
        await MessageConsent.filter(customer_id=customer_id, template_id=template_id).using_db(conn).update(
            last_accepted_at=now)


async def set_opt_out(conn: BaseDBAsyncClient, customer_id: int, opt_out: bool) -> MarketingProfile:
    await MarketingProfile.bulk_create([MarketingProfile(customer_id=customer_id)], ignore_conflicts=True,
                                       using_db=conn)
    profile = await MarketingProfile.filter(customer_id=customer_id).using_db(conn).select_for_update().first()
    if profile.marketing_opt_out != opt_out:
        profile.marketing_opt_out = opt_out
        profile.opt_out_changed_at = clock.now()
        await profile.save(using_db=conn, update_fields=["marketing_opt_out", "opt_out_changed_at"])
    return profile


async def marketing_state(conn: BaseDBAsyncClient, customer_id: int) -> tuple[MarketingProfile, list[MessageConsent]]:
    profile = await MarketingProfile.get_or_none(customer_id=customer_id, using_db=conn)
    consents = await MessageConsent.filter(customer_id=customer_id).using_db(conn).order_by("template_id")
    return profile or MarketingProfile(customer_id=customer_id), consents


async def drop_consent(conn: BaseDBAsyncClient, recipient_id: int) -> None:
    """WeChat said the customer has no subscription left (43101): our count was off; trust WeChat."""
    recipient = await OutreachRecipient.get_or_none(id=recipient_id, using_db=conn)
    if recipient is None:
        return
    outreach = await Outreach.get(id=recipient.outreach_id, using_db=conn)
    await MessageConsent.filter(customer_id=recipient.customer_id, template_id=outreach.template_id).using_db(
        conn).update(credits=0)
