"""Acquisition sources (来源) recorded at first login, the channels staff configure, and the staff referral
program: a staff member earns a share of what the customers they brought spend, never of their own purchases.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError

from crm import partners
from crm.errors import ChannelCodeTaken, ChannelNotFound
from crm.models import (
    Acquisition,
    AcquisitionChannel,
    ChannelKind,
    SourceKind,
    StaffReward,
    StaffRewardStatus,
)
from crm.settings import CrmSettings, get_crm_settings
from kernel import clock, sql
from kernel.errors import ValidationFailed
from kernel.identity.models import Customer

# WeChat QR scenes are at most 32 visible characters.
_SCENE = re.compile(r"^[A-Za-z0-9_\-.:]{1,32}$")


async def create_channel(conn: BaseDBAsyncClient, values: dict[str, Any]) -> AcquisitionChannel:
    if not _SCENE.match(values["code"]):
        raise ValidationFailed("A code is 1-32 letters, digits or _ - . : (a WeChat QR scene).", field="code")
    if values["kind"] == ChannelKind.staff and not values.get("staff_id"):
        raise ValidationFailed("A staff channel names its staff member.", field="staff_id")
    if await Customer.filter(referral_code=values["code"]).using_db(conn).exists():
        raise ChannelCodeTaken(field="code")
    try:
        return await AcquisitionChannel.create(**values, created_at=clock.now(), using_db=conn)
    except IntegrityError as exc:
        raise ChannelCodeTaken(field="code") from exc


async def get_channel(conn: BaseDBAsyncClient, channel_id: int) -> AcquisitionChannel:
    channel = await AcquisitionChannel.get_or_none(id=channel_id, using_db=conn)
    if channel is None:
        raise ChannelNotFound()
    return channel


async def update_channel(conn: BaseDBAsyncClient, channel_id: int, changes: dict[str, Any]) -> AcquisitionChannel:
    channel = await get_channel(conn, channel_id)
    for name, value in changes.items():
        setattr(channel, name, value)
    if changes:
        await channel.save(using_db=conn, update_fields=list(changes))
    return channel


async def record_at_first_login(conn: BaseDBAsyncClient, customer: Customer, created: bool,
                                referral_code: str | None, scene: str | None) -> Acquisition | None:
    """Inside the login transaction. Only a new customer gets a source; the first one recorded stays."""
    if not created:
        return None
    kind, channel_id, referrer_id, code = SourceKind.organic, None, None, ""
    if referral_code:
        referrer = await Customer.get_or_none(referral_code=referral_code.strip().upper(), deleted_at=None,
                                              using_db=conn)
        if referrer is not None and referrer.id != customer.id:
            kind, referrer_id, code = SourceKind.customer_referral, referrer.id, referrer.referral_code
    if kind == SourceKind.organic and scene:
        channel = await AcquisitionChannel.get_or_none(code=scene.strip(), is_active=True, using_db=conn)
        if channel is not None and channel.staff_customer_id != customer.id:
            kind, channel_id, code = SourceKind(channel.kind.value), channel.id, channel.code
    await Acquisition.bulk_create(
        [Acquisition(customer_id=customer.id, kind=kind, channel_id=channel_id, referrer_customer_id=referrer_id,
                     code=code, acquired_at=clock.now())],
        ignore_conflicts=True, using_db=conn,
    )
    return await Acquisition.get_or_none(customer_id=customer.id, using_db=conn)


# --- staff referral rewards -------------------------------------------------------------------------

# How long after a staff-acquired customer's validity ended the scan still looks at them: a consumption made
# on the last valid day is found even when the job did not run for this long (a stopped worker).
STAFF_SCAN_SLACK = timedelta(days=30)


def staff_scan_horizon() -> datetime:
    """The scan reads customers acquired at or after this instant."""
    return clock.now() - timedelta(days=get_crm_settings().staff_reward_valid_days) - STAFF_SCAN_SLACK


async def expire_staff_rewards_outside_horizon_chunk(conn: BaseDBAsyncClient, limit: int = 2000) -> tuple[int, int]:
    """Consumptions that would earn a staff reward but that the scan met only past its horizon (their customer
    was acquired before it: a consumption recorded with an old date, or a worker stopped longer than
    STAFF_SCAN_SLACK) are never rewarded automatically, which would pay out of the program's window without
    anyone deciding to. Each is recorded once as an `expired` reward, with the share it would have earned: it
    stops being a candidate (the reward is unique per consumption, so a repeated or racing run records nothing
    more), the job warns about it once, and finance finds it in the staff-reward list (`status=expired`) to
    decide by hand. Returns (consumptions looked at, rewards this transaction recorded)."""
    settings = get_crm_settings()
    consumptions = await partners.unrewarded_staff_consumptions_before(
        conn, acquired_before=staff_scan_horizon(), valid_days=settings.staff_reward_valid_days, limit=limit,
    )
    if not consumptions:
        return 0, 0
    now = clock.now()
    values: list[Any] = []
    for c in consumptions:
        base, amount, hold_until = _reward_terms(c, settings)
        values += [int(c["staff_id"]), int(c["customer_id"]), int(c["id"]), base, amount,
                   StaffRewardStatus.expired.value, hold_until, now]
    # The count of rows the insert wrote (not of rows read) is what this run newly expired: a racing run that
    # wrote them first leaves this one nothing to warn about.
    ignore = "OR IGNORE" if sql.is_sqlite(conn) else "IGNORE"
    recorded = await sql.execute(
        conn,
        f"INSERT {ignore} INTO crm_staff_reward (staff_id, customer_id, consumption_id, base_fen, amount_fen, "
        "status, hold_until, created_at) VALUES " + ",".join(["(%s, %s, %s, %s, %s, %s, %s, %s)"] * len(consumptions)),
        values,
    )
    return len(consumptions), recorded


def _reward_terms(consumption: dict[str, Any], settings: CrmSettings) -> tuple[int, int, datetime]:
    """A staff reward's base (the consumption's net spend), its share and the end of its hold: one rule for the
    rewards accrued and for those recorded as expired (which show what the consumption would have earned)."""
    base = int(consumption["amount_fen"])
    return (base, base * settings.staff_reward_bp // 10_000,
            sql.instant(consumption["occurred_at"]) + timedelta(days=settings.staff_reward_hold_days))


async def accrue_staff_rewards_chunk(conn: BaseDBAsyncClient, limit: int = 2000) -> int:
    """A staff-acquired customer's consumption within the program's validity that has no reward yet earns
    their staff member a pending reward (unique per consumption, so a racing or repeated run adds nothing).
    Returns rewards accrued (0 when caught up)."""
    settings = get_crm_settings()
    consumptions = await partners.unrewarded_staff_consumptions(
        conn, acquired_since=staff_scan_horizon(), valid_days=settings.staff_reward_valid_days, limit=limit,
    )
    if not consumptions:
        return 0
    rewards = []
    for c in consumptions:
        base, amount, hold_until = _reward_terms(c, settings)
        rewards.append(StaffReward(
            staff_id=int(c["staff_id"]), customer_id=int(c["customer_id"]), consumption_id=int(c["id"]),
            base_fen=base, amount_fen=amount, hold_until=hold_until, created_at=clock.now(),
        ))
    await StaffReward.bulk_create(rewards, ignore_conflicts=True, using_db=conn)
    return len(rewards)


async def release_staff_rewards_chunk(conn: BaseDBAsyncClient, limit: int = 500) -> int:
    """Rewards whose hold ended: recomputed on what is left after refunds, then handed to the finance batches
    (the referrals room's settlement) with the staff member as payee. Returns rewards decided."""
    due = await StaffReward.filter(status=StaffRewardStatus.pending, hold_until__lte=clock.now()).using_db(
        conn).order_by("id").limit(limit).select_for_update(skip_locked=True)
    if not due:
        return 0
    net = await partners.net_of_consumptions(conn, [r.consumption_id for r in due])
    bp = get_crm_settings().staff_reward_bp
    for reward in due:
        # The staff member may have linked their own account after the reward was accrued.
        own = await AcquisitionChannel.filter(staff_id=reward.staff_id, staff_customer_id=reward.customer_id).using_db(
            conn).exists()
        amount = max(0, net.get(reward.consumption_id, 0)) * bp // 10_000
        if own or amount <= 0:
            reward.status = StaffRewardStatus.cancelled
        else:
            reward.amount_fen = amount
            await partners.hand_over_staff_payout(
                conn, staff_id=reward.staff_id, ref=f"crm_staff_reward:{reward.id}", amount_fen=amount,
                note=f"staff referral: consumption {reward.consumption_id}",
            )
            reward.status = StaffRewardStatus.handed_over
        await reward.save(using_db=conn, update_fields=["status", "amount_fen"])
    return len(due)
