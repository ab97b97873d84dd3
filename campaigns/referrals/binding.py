"""Binding a referee to a referrer at login (first touch wins), with every refusal recorded."""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError

from campaigns.referrals import partners
from campaigns.referrals.models import (
    AttemptOutcome,
    BindingAttempt,
    BindingStatus,
    RefusalReason,
    ReferralBinding,
    ReferralProgram,
)
from campaigns.referrals.programs import active_program
from kernel import clock
from kernel.identity.models import Customer

log = structlog.get_logger(__name__)

# Bindings form a forest; the walk is bounded anyway so a corrupted row can never spin forever.
_MAX_CHAIN = 64

SIGNAL_BURST = "burst"
SIGNAL_SHARED_PHONE = "shared_phone"


def normalise_code(code: str) -> str:
    return code.strip().upper()


async def _record(
    conn: BaseDBAsyncClient,
    referee: Customer,
    code: str,
    outcome: AttemptOutcome,
    reason: RefusalReason | None = None,
    referrer_id: int | None = None,
    program_id: int | None = None,
) -> BindingAttempt:
    if reason is not None:
        log.info("referrals.binding_refused", referee_id=referee.id, reason=reason.value)
    return await BindingAttempt.create(
        referee_id=referee.id,
        code=code[:16],
        referrer_id=referrer_id,
        program_id=program_id,
        outcome=outcome,
        reason=reason,
        created_at=clock.now(),
        using_db=conn,
    )


async def referee_has_history(conn: BaseDBAsyncClient, customer_id: int) -> bool:
    """A friend who already consumed or booked was not brought by this referral."""
    if await partners.customer_has_consumption(conn, customer_id):
        return True
    return await partners.customer_has_booking(conn, customer_id)


async def would_loop(conn: BaseDBAsyncClient, *, referee_id: int, referrer_id: int) -> bool:
    """True when the referee sits anywhere up the referrer's chain (A→B and B→A, or longer)."""
    current = referrer_id
    for _ in range(_MAX_CHAIN):
        parent = (
            await ReferralBinding.filter(referee_id=current).using_db(conn).values_list("referrer_id", flat=True)
        )
        if not parent:
            return False
        if parent[0] == referee_id:
            return True
        current = parent[0]
    return True


async def binding_signals(
    conn: BaseDBAsyncClient, program: ReferralProgram, referrer: Customer, referee: Customer, now: datetime
) -> list[str]:
    """Fraud signals seen at binding time (rewards of a flagged binding are held for staff)."""
    signals: list[str] = []
    since = now - timedelta(minutes=program.burst_window_minutes)
    recent = await ReferralBinding.filter(referrer_id=referrer.id, bound_at__gte=since).using_db(conn).count()
    # `recent` does not include this binding yet.
    if recent + 1 > program.burst_max_referees:
        signals.append(SIGNAL_BURST)
    if referee.phone_hash and referee.phone_hash == referrer.phone_hash:
        signals.append(SIGNAL_SHARED_PHONE)
    return signals


async def bind_at_login(
    conn: BaseDBAsyncClient, customer: Customer, created: bool, referral_code: str | None
) -> BindingAttempt | None:
    """Bind `customer` to the owner of `referral_code`, or record why not. Never raises a refusal:
    a bad code must not stop anyone from logging in."""
    if not referral_code:
        return None
    code = normalise_code(referral_code)
    now = clock.now()
    referrer = await Customer.get_or_none(referral_code=code, deleted_at=None, using_db=conn)
    if referrer is None:
        return await _record(conn, customer, code, AttemptOutcome.refused, RefusalReason.unknown_code)
    if referrer.id == customer.id:
        return await _record(
            conn, customer, code, AttemptOutcome.refused, RefusalReason.self_referral, referrer.id
        )
    program = await active_program(conn)
    if program is None:
        return await _record(
            conn, customer, code, AttemptOutcome.refused, RefusalReason.program_inactive, referrer.id
        )

    def refuse(reason: RefusalReason):
        return _record(conn, customer, code, AttemptOutcome.refused, reason, referrer.id, program.id)

    existing = await ReferralBinding.get_or_none(referee_id=customer.id, using_db=conn)
    if existing is not None and (existing.status != BindingStatus.bound or existing.expires_at > now):
        if existing.referrer_id == referrer.id:
            return None  # the friend opened the same link again: nothing new to record
        return await refuse(RefusalReason.already_bound)
    if await referee_has_history(conn, customer.id):
        return await refuse(RefusalReason.referee_has_history)
    if await would_loop(conn, referee_id=customer.id, referrer_id=referrer.id):
        return await refuse(RefusalReason.loop)

    signals = await binding_signals(conn, program, referrer, customer, now)
    values = dict(
        program_id=program.id,
        referrer_id=referrer.id,
        code=code,
        bound_at=now,
        expires_at=now + timedelta(days=program.binding_valid_days),
        qualify_until=now + timedelta(days=program.qualify_within_days),
        signals=signals,
        flagged=bool(signals),
    )
    if existing is not None:
        # The earlier binding expired without qualifying: the next touch may take it over, once.
        taken = await ReferralBinding.filter(
            id=existing.id, status=BindingStatus.bound, expires_at__lte=now
        ).using_db(conn).update(**values)
        if not taken:
            return await refuse(RefusalReason.already_bound)
        return await _record(conn, customer, code, AttemptOutcome.rebound, None, referrer.id, program.id)
    try:
        await ReferralBinding.create(referee_id=customer.id, using_db=conn, **values)
    except IntegrityError:
        # A concurrent login of the same customer bound first (unique referee): first touch wins.
        return await refuse(RefusalReason.already_bound)
    return await _record(conn, customer, code, AttemptOutcome.bound, None, referrer.id, program.id)
