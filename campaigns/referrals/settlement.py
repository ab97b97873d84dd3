"""Finance settlement (结算): batches of payable cash rewards, maker-checker approval, payment, exports.

A reward joins a batch only through `UPDATE ... SET batch_id = ? WHERE status = 'payable' AND
batch_id IS NULL`, so two batches created at once can never share a reward; totals are computed
from the rows the batch actually claimed.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.functions import Count, Sum

from campaigns.referrals.errors import (
    BatchNotFound,
    BatchStateConflict,
    ExternalRefTaken,
    NothingToSettle,
    SameFinanceUser,
    SettlementDateTooFar,
)
from campaigns.referrals.models import (
    AdjustmentStatus,
    BatchStatus,
    ReferralReward,
    RewardAdjustment,
    RewardKind,
    RewardStatus,
    SettlementBatch,
    StaffPayout,
    StaffPayoutStatus,
)
from campaigns.referrals.schemas import PayeeLineOut
from kernel import clock
from kernel.identity.models import Customer, StaffMember


# A reward is payable only once its hold has passed, so a later `up_to` settles nothing more; the bound
# turns a typo (or date.max, whose cutoff overflows) into a refusal.
_MAX_DAYS_AHEAD = 366


def cutoff_of(up_to: date) -> datetime:
    """The end of `up_to` in the clinic's time zone: rewards due before it belong to the batch."""
    return datetime.combine(up_to + timedelta(days=1), time.min, tzinfo=clock.clinic_zone())


async def _count_and_sum(conn: BaseDBAsyncClient, query, by: str) -> dict[int, tuple[int, int]]:
    """`by` → (rows, amount fen) of a batch's rewards, adjustments or staff payouts, in one grouped query."""
    rows = await query.using_db(conn).annotate(n=Count("id"), fen=Sum("amount_fen")).group_by(by).values(by, "n", "fen")
    return {row[by]: (int(row["n"]), int(row["fen"] or 0)) for row in rows}


async def _sums(conn: BaseDBAsyncClient, batch_id: int) -> dict[int, list[int]]:
    """payee id → [reward count, rewards fen, adjustment count, adjustments fen] for one batch."""
    rewards = await _count_and_sum(conn, ReferralReward.filter(batch_id=batch_id), "beneficiary_id")
    adjustments = await _count_and_sum(conn, RewardAdjustment.filter(batch_id=batch_id), "payee_id")
    return {
        payee: [*rewards.get(payee, (0, 0)), *adjustments.get(payee, (0, 0))]
        for payee in [*rewards, *(p for p in adjustments if p not in rewards)]
    }


async def _staff_sums(conn: BaseDBAsyncClient, batch_id: int) -> dict[int, list[int]]:
    """staff id → [payout count, payouts fen, 0, 0] for one batch (staff payouts have no clawbacks)."""
    payouts = await _count_and_sum(conn, StaffPayout.filter(batch_id=batch_id), "staff_id")
    return {staff_id: [n, fen, 0, 0] for staff_id, (n, fen) in payouts.items()}


async def add_staff_payout(conn: BaseDBAsyncClient, *, staff_id: int, ref: str, amount_fen: int, note: str = "") -> StaffPayout:
    """Contract for the CRM room: a payable amount for a staff member, idempotent on `ref`."""
    await StaffPayout.bulk_create(
        [StaffPayout(staff_id=staff_id, ref=ref, amount_fen=amount_fen, note=note[:255], created_at=clock.now())],
        ignore_conflicts=True, using_db=conn,
    )
    return await StaffPayout.get(ref=ref, using_db=conn)


async def _release(conn: BaseDBAsyncClient, batch_id: int, payee_ids: list[int] | None = None) -> None:
    """Give a batch's items (or some payees' items) back: rewards to payable, adjustments to open."""
    rewards = ReferralReward.filter(batch_id=batch_id, status=RewardStatus.batched)
    adjustments = RewardAdjustment.filter(batch_id=batch_id, status=AdjustmentStatus.batched)
    if payee_ids is not None:
        rewards = rewards.filter(beneficiary_id__in=payee_ids)
        adjustments = adjustments.filter(payee_id__in=payee_ids)
    await rewards.using_db(conn).update(status=RewardStatus.payable, batch_id=None)
    await adjustments.using_db(conn).update(status=AdjustmentStatus.open, batch_id=None)
    if payee_ids is None:
        await StaffPayout.filter(batch_id=batch_id, status=StaffPayoutStatus.batched).using_db(conn).update(
            status=StaffPayoutStatus.payable, batch_id=None
        )


async def create_batch(conn: BaseDBAsyncClient, *, staff_id: int, up_to: date, note: str = "") -> SettlementBatch:
    """Claim every payable cash reward due by the end of `up_to`, and every open adjustment."""
    if up_to > clock.local_today() + timedelta(days=_MAX_DAYS_AHEAD):
        raise SettlementDateTooFar(field="up_to", up_to=up_to.isoformat())
    cutoff = cutoff_of(up_to)
    batch = await SettlementBatch.create(
        status=BatchStatus.draft, up_to=up_to, created_by_id=staff_id, note=note, created_at=clock.now(),
        using_db=conn,
    )
    await ReferralReward.filter(
        status=RewardStatus.payable, kind=RewardKind.cash, batch_id=None, hold_until__lt=cutoff
    ).using_db(conn).update(status=RewardStatus.batched, batch_id=batch.id)
    await RewardAdjustment.filter(
        status=AdjustmentStatus.open, batch_id=None, created_at__lt=cutoff
    ).using_db(conn).update(status=AdjustmentStatus.batched, batch_id=batch.id)
    await StaffPayout.filter(
        status=StaffPayoutStatus.payable, batch_id=None, created_at__lt=cutoff
    ).using_db(conn).update(status=StaffPayoutStatus.batched, batch_id=batch.id)

    per_payee = await _sums(conn, batch.id)
    # A payee whose clawbacks exceed their new rewards cannot be paid a negative amount: their items
    # wait (still payable / open) for a batch in which the net is not negative.
    owing = [payee for payee, (_, fen, _, adj) in per_payee.items() if fen + adj < 0]
    if owing:
        await _release(conn, batch.id, owing)
        per_payee = {p: v for p, v in per_payee.items() if p not in owing}
    staff = await _staff_sums(conn, batch.id)
    if not per_payee and not staff:
        raise NothingToSettle(up_to=up_to.isoformat())
    lines = [*per_payee.values(), *staff.values()]
    batch.reward_count = sum(v[0] for v in lines)
    batch.rewards_fen = sum(v[1] for v in lines)
    batch.adjustment_count = sum(v[2] for v in lines)
    batch.adjustments_fen = sum(v[3] for v in lines)
    batch.total_fen = batch.rewards_fen + batch.adjustments_fen
    batch.payee_count = len(lines)
    await batch.save(
        using_db=conn,
        update_fields=["reward_count", "rewards_fen", "adjustment_count", "adjustments_fen", "total_fen", "payee_count"],
    )
    return batch


async def get_batch(conn: BaseDBAsyncClient, batch_id: int) -> SettlementBatch:
    batch = await SettlementBatch.get_or_none(id=batch_id, using_db=conn)
    if batch is None:
        raise BatchNotFound(batch_id=batch_id)
    return batch


async def approve_batch(conn: BaseDBAsyncClient, batch_id: int, *, staff_id: int) -> SettlementBatch:
    """Maker-checker: only a finance user other than the creator may approve, checked in the UPDATE itself."""
    batch = await get_batch(conn, batch_id)
    if batch.created_by_id == staff_id:
        raise SameFinanceUser(batch_id=batch_id)
    updated = await SettlementBatch.filter(id=batch_id, status=BatchStatus.draft).exclude(
        created_by_id=staff_id
    ).using_db(conn).update(status=BatchStatus.approved, approved_by_id=staff_id, approved_at=clock.now())
    if not updated:
        raise BatchStateConflict(status=batch.status.value, expected=BatchStatus.draft.value)
    return await get_batch(conn, batch_id)


async def mark_paid(conn: BaseDBAsyncClient, batch_id: int, *, staff_id: int, external_ref: str) -> SettlementBatch:
    """Record the payment: a checker step too, so not by the batch's maker (checked in the UPDATE itself)."""
    batch = await get_batch(conn, batch_id)
    if batch.created_by_id == staff_id:
        raise SameFinanceUser("The finance user who created a batch cannot record its payment.", batch_id=batch_id)
    if batch.status == BatchStatus.paid and batch.external_ref == external_ref:
        return batch  # finance pressed the button twice: same answer, nothing changes
    now = clock.now()
    try:
        updated = await SettlementBatch.filter(id=batch_id, status=BatchStatus.approved).exclude(
            created_by_id=staff_id
        ).using_db(conn).update(
            status=BatchStatus.paid, paid_by_id=staff_id, paid_at=now, external_ref=external_ref
        )
    except IntegrityError as exc:
        raise ExternalRefTaken(field="external_ref") from exc
    if not updated:
        raise BatchStateConflict(status=batch.status.value, expected=BatchStatus.approved.value)
    await ReferralReward.filter(batch_id=batch_id, status=RewardStatus.batched).using_db(conn).update(
        status=RewardStatus.paid, paid_at=now
    )
    await RewardAdjustment.filter(batch_id=batch_id, status=AdjustmentStatus.batched).using_db(conn).update(
        status=AdjustmentStatus.settled, settled_at=now
    )
    await StaffPayout.filter(batch_id=batch_id, status=StaffPayoutStatus.batched).using_db(conn).update(
        status=StaffPayoutStatus.paid, paid_at=now
    )
    return await get_batch(conn, batch_id)


async def cancel_batch(conn: BaseDBAsyncClient, batch_id: int, *, staff_id: int) -> SettlementBatch:
    """Drop an unpaid batch; its rewards become payable again for the next batch."""
    batch = await get_batch(conn, batch_id)
    updated = await SettlementBatch.filter(
        id=batch_id, status__in=[BatchStatus.draft, BatchStatus.approved]
    ).using_db(conn).update(status=BatchStatus.cancelled, cancelled_by_id=staff_id, cancelled_at=clock.now())
    if not updated:
        raise BatchStateConflict(status=batch.status.value)
    await _release(conn, batch_id)
    return await get_batch(conn, batch_id)


async def payee_lines(conn: BaseDBAsyncClient, batch_id: int) -> list[PayeeLineOut]:
    """One line per payee, ordered by payee id. The lines add up to the batch's total, to the fen."""
    per_payee = await _sums(conn, batch_id)
    people = {
        c["id"]: c
        for c in await Customer.filter(id__in=list(per_payee)).using_db(conn).values("id", "nickname", "phone_masked")
    }
    staff = await _staff_sums(conn, batch_id)
    names = dict(
        await StaffMember.filter(id__in=list(staff)).using_db(conn).values_list("id", "display_name")
    )
    return [
        PayeeLineOut(
            payee_id=payee,
            nickname=people.get(payee, {}).get("nickname") or "",
            phone_masked=people.get(payee, {}).get("phone_masked") or "",
            reward_count=n,
            rewards_fen=fen,
            adjustment_count=adj_n,
            adjustments_fen=adj_fen,
            net_fen=fen + adj_fen,
        )
        for payee, (n, fen, adj_n, adj_fen) in sorted(per_payee.items())
    ] + [
        PayeeLineOut(
            payee_id=staff_id, nickname=names.get(staff_id) or "", phone_masked="", reward_count=n,
            rewards_fen=fen, adjustment_count=0, adjustments_fen=0, net_fen=fen, payee_kind="staff",
        )
        for staff_id, (n, fen, _, _) in sorted(staff.items())
    ]


def yuan(fen: int) -> str:
    """Integer fen as a yuan string ("-12.05"), by integer arithmetic only."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"


EXPORT_HEADER = [
    "payee_id", "nickname", "phone", "reward_count", "rewards_fen", "adjustment_count", "adjustments_fen",
    "net_fen", "net_yuan", "payee_kind",
]


def export_rows(batch: SettlementBatch, lines: list[PayeeLineOut]) -> list[list[object]]:
    rows: list[list[object]] = [EXPORT_HEADER]
    for line in lines:
        rows.append([
            line.payee_id, line.nickname, line.phone_masked, line.reward_count, line.rewards_fen,
            line.adjustment_count, line.adjustments_fen, line.net_fen, yuan(line.net_fen), line.payee_kind,
        ])
    rows.append([
        "TOTAL", f"batch {batch.id}", "", sum(x.reward_count for x in lines), sum(x.rewards_fen for x in lines),
        sum(x.adjustment_count for x in lines), sum(x.adjustments_fen for x in lines),
        sum(x.net_fen for x in lines), yuan(sum(x.net_fen for x in lines)), "",
    ])
    return rows
