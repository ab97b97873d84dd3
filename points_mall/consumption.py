"""Consumption (money paid at the clinic or for an order): it earns points and tells other rooms through the outbox."""

from __future__ import annotations

from datetime import timedelta

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F

from kernel import clock
from kernel.errors import ValidationFailed
from kernel.outbox import enqueue
from points_mall.errors import (
    ConsumptionApprovalDecided,
    ConsumptionApprovalNotFound,
    ConsumptionNotFound,
    ExternalRefReused,
    RefundExceedsAmount,
    SameStaffApproval,
)
from points_mall.ledger import earn_points, lock_account, reverse_points
from points_mall.models import (
    ApprovalStatus,
    Consumption,
    ConsumptionApproval,
    ConsumptionRefund,
    ConsumptionSource,
    EntryKind,
    PendingPoints,
    PendingStatus,
)
from points_mall.rules import get_rules
from points_mall.settings import get_points_settings
from points_mall.tiers import evaluate_tier, multiplier_pct

# Outbox job names of the cross-room contract (the referrals room registers them).
CONSUMPTION_RECORDED = "referrals.consumption_recorded"
CONSUMPTION_REFUNDED = "referrals.consumption_refunded"


def points_for(amount_fen: int, points_per_unit: int, unit_fen: int, multiplier: int) -> int:
    # Integer arithmetic only: floor(amount / unit * points * multiplier%).
    return amount_fen * points_per_unit * multiplier // (unit_fen * 100)


async def record_consumption(
    conn: BaseDBAsyncClient,
    *,
    customer_id: int,
    amount_fen: int,
    source: str,
    external_ref: str,
    branch_id: int | None = None,
    service_id: int | None = None,
    staff_id: int | None = None,
) -> Consumption:
    """Record a paid consumption once per `external_ref`, earn its points (held for the refund window),
    enqueue `referrals.consumption_recorded`, and upgrade the tier if a threshold is now reached."""
    if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or amount_fen <= 0:
        raise ValidationFailed("amount_fen must be a positive integer.", field="amount_fen")
    source = ConsumptionSource(source)
    # The account lock first: it serialises this customer's effects and makes the reads below current.
    account = await lock_account(conn, customer_id)
    existing = await Consumption.get_or_none(external_ref=external_ref, using_db=conn)
    if existing is not None:
        return _same_or_refuse(existing, customer_id, amount_fen)
    rules = await get_rules(conn)
    now = clock.now()
    points = points_for(amount_fen, rules.earn_points_per_unit, rules.earn_unit_fen, await multiplier_pct(conn, account))
    try:
        consumption = await Consumption.create(
            customer_id=customer_id, amount_fen=amount_fen, source=source, external_ref=external_ref,
            branch_id=branch_id, service_id=service_id, staff_id=staff_id, points=points,
            points_ref=f"consumption:{external_ref}", occurred_at=now, using_db=conn,
        )
    except IntegrityError:
        # The same external_ref recorded concurrently for another customer's account lock.
        existing = await Consumption.filter(external_ref=external_ref).using_db(conn).select_for_update().get()
        return _same_or_refuse(existing, customer_id, amount_fen)
    if points > 0:
        pending_until = now + timedelta(days=rules.pending_days) if rules.pending_days > 0 else None
        await earn_points(
            conn, customer_id=customer_id, points=points, kind=EntryKind.consumption, ref=consumption.points_ref,
            reason=f"Consumption ¥{amount_fen / 100:.2f}", pending_until=pending_until, earned_at=now,
        )
    await enqueue(conn, CONSUMPTION_RECORDED, consumption.id, customer_id, amount_fen, now.isoformat())
    await evaluate_tier(conn, customer_id, allow_down=False, reason=f"consumption {external_ref}")
    return consumption


async def record_staff_consumption(
    conn: BaseDBAsyncClient,
    *,
    customer_id: int,
    amount_fen: int,
    external_ref: str,
    staff_id: int,
    branch_id: int | None = None,
    service_id: int | None = None,
) -> tuple[Consumption | ConsumptionApproval, bool]:
    """What the front desk records: at or below the approval threshold it is a consumption at once; above
    it, a `ConsumptionApproval` that earns nothing until another member approves it. Idempotent on
    `external_ref` either way (a retry finds the same row, and the bool is False: nothing new happened;
    other details under the same ref are `409 external_ref_reused`)."""
    if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or amount_fen <= 0:
        raise ValidationFailed("amount_fen must be a positive integer.", field="amount_fen")
    await lock_account(conn, customer_id)  # first, as in record_consumption: the reads below are current
    waiting = await ConsumptionApproval.get_or_none(external_ref=external_ref, using_db=conn)
    if waiting is not None:
        return _same_or_refuse(waiting, customer_id, amount_fen), False
    done = await Consumption.get_or_none(external_ref=external_ref, using_db=conn)
    if done is not None:
        return _same_or_refuse(done, customer_id, amount_fen), False
    details = dict(customer_id=customer_id, amount_fen=amount_fen, external_ref=external_ref, branch_id=branch_id,
                   service_id=service_id)
    if amount_fen <= get_points_settings().consumption_approval_above_fen:
        return await record_consumption(conn, source=ConsumptionSource.front_desk, staff_id=staff_id, **details), True
    try:
        return await ConsumptionApproval.create(recorded_by_id=staff_id, created_at=clock.now(), using_db=conn,
                                                **details), True
    except IntegrityError:
        # The same recording sent twice at once: the locking read sees the other's committed row.
        waiting = await ConsumptionApproval.filter(external_ref=external_ref).using_db(conn).select_for_update().get()
        return _same_or_refuse(waiting, customer_id, amount_fen), False


async def approval_page(
    conn: BaseDBAsyncClient, *, status: ApprovalStatus | None, limit: int, offset: int
) -> tuple[int, list[ConsumptionApproval]]:
    """Consumptions awaiting (or past) a second member's approval, newest first, with the total."""
    query = ConsumptionApproval.all() if status is None else ConsumptionApproval.filter(status=status)
    total = await query.using_db(conn).count()
    rows = await query.using_db(conn).order_by("-id").offset(offset).limit(limit)
    return total, rows


async def _approval(conn: BaseDBAsyncClient, approval_id: int) -> ConsumptionApproval:
    approval = await ConsumptionApproval.get_or_none(id=approval_id, using_db=conn)
    if approval is None:
        raise ConsumptionApprovalNotFound(approval_id=approval_id)
    return approval


async def _decide(conn: BaseDBAsyncClient, approval: ConsumptionApproval, status: ApprovalStatus, staff_id: int,
                  note: str, *, other_than_recorder: bool) -> None:
    query = ConsumptionApproval.filter(id=approval.id, status=ApprovalStatus.pending).using_db(conn)
    if other_than_recorder:
        query = query.exclude(recorded_by_id=staff_id)
    won = await query.update(status=status, decided_by_id=staff_id, decided_at=clock.now(), decision_note=note)
    if not won:
        current = await ConsumptionApproval.filter(id=approval.id).using_db(conn).select_for_update().get()
        raise ConsumptionApprovalDecided(status=current.status.value)


async def approve_consumption(
    conn: BaseDBAsyncClient, approval_id: int, *, staff_id: int, note: str = ""
) -> tuple[ConsumptionApproval, Consumption]:
    """A second member approves: the consumption is recorded now (points held, tier, referral), once.

    The conditional `pending → approved` decides between two approvers; the recorder can never approve.
    """
    # Locking reads first (the approval, then the customer as every points effect does), so the plain reads
    # of record_consumption see what was committed before.
    approval = await ConsumptionApproval.filter(id=approval_id).using_db(conn).select_for_update().first()
    if approval is None:
        raise ConsumptionApprovalNotFound(approval_id=approval_id)
    await lock_account(conn, approval.customer_id)  # type: ignore[attr-defined]
    if approval.recorded_by_id == staff_id:
        raise SameStaffApproval(approval_id=approval_id)
    await _decide(conn, approval, ApprovalStatus.approved, staff_id, note, other_than_recorder=True)
    consumption = await record_consumption(
        conn, customer_id=approval.customer_id, amount_fen=approval.amount_fen,  # type: ignore[attr-defined]
        source=ConsumptionSource.front_desk, external_ref=approval.external_ref, branch_id=approval.branch_id,
        service_id=approval.service_id, staff_id=approval.recorded_by_id,
    )
    await ConsumptionApproval.filter(id=approval.id).using_db(conn).update(consumption_id=consumption.id)
    return await _approval(conn, approval_id), consumption


async def reject_consumption(
    conn: BaseDBAsyncClient, approval_id: int, *, staff_id: int, note: str = ""
) -> ConsumptionApproval:
    """Refuse (or, by the recorder, withdraw a mistaken entry): nothing was earned, nothing is."""
    approval = await _approval(conn, approval_id)
    await _decide(conn, approval, ApprovalStatus.rejected, staff_id, note, other_than_recorder=False)
    return await _approval(conn, approval_id)


def _same_or_refuse(existing, customer_id: int, amount_fen: int):
    if existing.customer_id != customer_id or existing.amount_fen != amount_fen:  # type: ignore[attr-defined]
        raise ExternalRefReused(field="external_ref", consumption_id=existing.id)
    return existing


async def refund_consumption(
    conn: BaseDBAsyncClient, *, external_ref: str, refunded_fen: int, ref: str
) -> Consumption:
    """Refund part or all of a consumption once per `ref`: its points are reversed in proportion
    (cancelled while still pending), and `referrals.consumption_refunded` is enqueued."""
    if not isinstance(refunded_fen, int) or isinstance(refunded_fen, bool) or refunded_fen <= 0:
        raise ValidationFailed("refunded_fen must be a positive integer.", field="refunded_fen")
    found = await Consumption.get_or_none(external_ref=external_ref, using_db=conn)
    if found is None:
        raise ConsumptionNotFound(external_ref=external_ref)
    customer_id = found.customer_id  # type: ignore[attr-defined]
    await lock_account(conn, customer_id)
    consumption = await Consumption.filter(id=found.id).using_db(conn).select_for_update().get()
    if await ConsumptionRefund.filter(ref=ref).using_db(conn).exists():
        return consumption
    if consumption.refunded_fen + refunded_fen > consumption.amount_fen:
        raise RefundExceedsAmount(
            field="refunded_fen", refundable_fen=consumption.amount_fen - consumption.refunded_fen
        )
    refunded_total = consumption.refunded_fen + refunded_fen
    # Cumulative rounding: after a full refund exactly all the points are reversed.
    points_target = consumption.points * refunded_total // consumption.amount_fen
    points_now = points_target - consumption.points_reversed
    now = clock.now()
    try:
        await ConsumptionRefund.create(
            consumption=consumption, ref=ref, refunded_fen=refunded_fen, points_reversed=points_now,
            created_at=now, using_db=conn,
        )
    except IntegrityError:
        return consumption
    changed = await Consumption.filter(
        id=consumption.id, refunded_fen=consumption.refunded_fen
    ).using_db(conn).update(refunded_fen=F("refunded_fen") + refunded_fen, points_reversed=points_target)
    if changed != 1:
        raise RuntimeError("consumption changed under its row lock")
    if points_now > 0:
        await reverse_points(
            conn, original_ref=consumption.points_ref, ref=f"refund:{ref}", points=points_now,
            reason=f"Refund ¥{refunded_fen / 100:.2f}",
        )
    await enqueue(conn, CONSUMPTION_REFUNDED, consumption.id, customer_id, refunded_fen)
    consumption.refunded_fen = refunded_total
    consumption.points_reversed = points_target
    return consumption


async def points_statuses(conn: BaseDBAsyncClient, consumptions: list[Consumption]) -> dict[int, str]:
    """Where each consumption's points stand: "none", the hold's status while held, else "released" (one query)."""
    refs = [c.points_ref for c in consumptions if c.points != 0]
    rows = await PendingPoints.filter(ref__in=refs).using_db(conn).values_list("ref", "status") if refs else []
    held = {ref: PendingStatus(status).value for ref, status in rows}
    return {c.id: "none" if c.points == 0 else held.get(c.points_ref, "released") for c in consumptions}


async def customer_has_consumption(conn: BaseDBAsyncClient, customer_id: int) -> bool:
    return await Consumption.filter(customer_id=customer_id).using_db(conn).exists()
