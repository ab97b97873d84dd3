"""Expiry (idempotent job, reminders), pending release by the job, and tiers up at once / down by review."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone

import pytest

from kernel import clock
from kernel.db import transaction
from kernel.outbox.models import OutboxMessage
from points_mall import tasks
from points_mall.models import EntryKind, ExpiryReminder, MemberTier, PointsAccount, PointsLedgerEntry, TierChange
from points_mall.rules import get_rules, update_rules
from points_mall.service import record_consumption, record_qualified_referral, refund_consumption, spend_points
from points_mall.tiers import create_tier
from tests.factories import make_customer, run_worker
from tests.points_mall.factories import assert_ledger_consistent, balance_of, give_points

UTC = timezone.utc


async def _reminder_template(template_id: str) -> None:
    async with transaction() as conn:
        await update_rules(conn, None, {"expiry_reminder_template_id": template_id})


async def test_points_expire_at_end_of_twelfth_month_and_job_is_idempotent(redis):
    await _reminder_template("tmpl-points-expiry")
    customer = await make_customer()
    clock.set_now(datetime(2025, 1, 20, 2, tzinfo=UTC))
    await give_points(customer.id, 100, "t:" + secrets.token_hex(4))  # earned January 2025
    clock.set_now(datetime(2025, 2, 3, 2, tzinfo=UTC))
    await give_points(customer.id, 40, "t:" + secrets.token_hex(4))  # earned February 2025
    async with transaction() as conn:
        await spend_points(conn, customer_id=customer.id, points=30, kind="redemption", ref="t:" + secrets.token_hex(4),
                           reason="mall")
    # Last day of January 2026 (Shanghai): nothing has expired yet; a reminder is due.
    clock.set_now(datetime(2026, 1, 31, 15, 0, tzinfo=UTC))
    first = await tasks.expire_points({})
    assert await balance_of(customer.id) == 110
    reminders = await ExpiryReminder.filter(customer_id=customer.id).order_by("expires_at")
    assert [r.points for r in reminders] == [70, 40]  # both within 30 days: 1 Feb and 1 Mar
    # 1 February 2026 00:00 Shanghai = 31 January 16:00 UTC: January's 70 remaining points expire.
    clock.set_now(datetime(2026, 1, 31, 16, 0, 1, tzinfo=UTC))
    await tasks.expire_points({})
    again = await tasks.expire_points({})
    assert again["customers_expired"] == 0 and again["reminders_queued"] == 0
    expiries = await PointsLedgerEntry.filter(customer_id=customer.id, kind=EntryKind.expiry)
    assert [e.delta for e in expiries] == [-70]
    assert await assert_ledger_consistent(customer.id) == 40
    assert first["reminders_queued"] >= 2
    assert await OutboxMessage.filter(job_name="points.send_expiry_reminder").count() >= 2

    from kernel.wechat.miniprogram import SandboxMiniProgram

    wechat = SandboxMiniProgram()
    await run_worker(redis, ctx={"miniprogram": wechat}, functions=tasks.FUNCTIONS)
    sent_to_customer = [m for m in wechat.sent if m.openid == customer.openid]
    assert sorted(m.data["points"] for m in sent_to_customer) == ["40", "70"]
    assert {m.template_id for m in sent_to_customer} == {"tmpl-points-expiry"}
    assert all(r.sent_at for r in await ExpiryReminder.filter(customer_id=customer.id))


async def test_no_expiry_reminder_without_the_clinics_template(redis):
    """WeChat refuses a template id the clinic did not register: with none in the rules, nothing is queued, and a
    reminder queued before the template was cleared is left unsent."""
    from kernel.wechat.miniprogram import SandboxMiniProgram

    customer = await make_customer()
    clock.set_now(datetime(2025, 3, 10, 2, tzinfo=UTC))
    await give_points(customer.id, 50, "t:" + secrets.token_hex(4))
    clock.set_now(datetime(2026, 3, 20, 2, tzinfo=UTC))  # 50 points expire on 1 April 2026, within 30 days
    for nothing in ("", "   "):  # only spaces is no template either
        await _reminder_template(nothing)
        assert await tasks.queue_expiry_reminders({}) == 0
        assert not await ExpiryReminder.filter(customer_id=customer.id).exists()

    await _reminder_template("tmpl-points-expiry")
    assert await tasks.queue_expiry_reminders({}) >= 1  # set later: the expiry still ahead is reminded of
    [reminder] = await ExpiryReminder.filter(customer_id=customer.id)
    await _reminder_template("")
    wechat = SandboxMiniProgram()
    assert await tasks.send_expiry_reminder({"miniprogram": wechat}, reminder.id) is False
    assert wechat.sent == []
    assert (await ExpiryReminder.get(id=reminder.id)).sent_at is None


async def test_release_job_moves_pending_points_once():
    customer = await make_customer()
    async with transaction() as conn:
        consumption = await record_consumption(conn, customer_id=customer.id, amount_fen=30_000, source="order",
                                               external_ref="order:" + secrets.token_hex(4))
    assert await balance_of(customer.id) == 0
    clock.set_now(clock.now() + timedelta(days=3))
    assert await tasks.release_pending_points({}) == 0 or await balance_of(customer.id) == 0
    clock.set_now(clock.now() + timedelta(days=5))
    await tasks.release_pending_points({})
    await tasks.release_pending_points({})
    assert await balance_of(customer.id) == 300
    account = await PointsAccount.get(customer_id=customer.id)
    assert account.pending == 0
    assert await PointsLedgerEntry.filter(ref=consumption.points_ref).count() == 1
    await assert_ledger_consistent(customer.id)


@pytest.fixture
async def tier_table():
    """Silver at ¥5,000 or 2 referrals (x1.1), gold at ¥20,000 (x1.5); no pending hold for these tests."""
    suffix = secrets.token_hex(6)
    await MemberTier.all().update(is_active=False)
    async with transaction() as conn:
        saved = (await get_rules(conn)).pending_days
        await update_rules(conn, None, {"pending_days": 0})
        silver = await create_tier(conn, name="Silver " + suffix, level=901, min_spend_fen=500_000, min_referrals=2,
                                   multiplier_pct=110)
        gold = await create_tier(conn, name="Gold " + suffix, level=902, min_spend_fen=2_000_000, multiplier_pct=150)
    yield silver, gold
    for tier in (silver, gold):  # retire them (levels are unique, so move them out of the way)
        await MemberTier.filter(id=tier.id).update(is_active=False, level=100_000 + tier.id)
    async with transaction() as conn:
        await update_rules(conn, None, {"pending_days": saved})


async def consume(customer_id: int, amount_fen: int) -> str:
    ext = "order:" + secrets.token_hex(5)
    async with transaction() as conn:
        await record_consumption(conn, customer_id=customer_id, amount_fen=amount_fen, source="order", external_ref=ext)
    return ext


async def test_tier_up_immediately_and_down_only_by_review(tier_table):
    silver, gold = tier_table
    customer = await make_customer()
    await consume(customer.id, 300_000)
    assert (await PointsAccount.get(customer_id=customer.id)).tier_id is None
    ext = await consume(customer.id, 250_000)  # 5,500 yuan in the window: silver at once
    assert (await PointsAccount.get(customer_id=customer.id)).tier_id == silver.id
    # Silver earns 1.1x: 1,000 yuan -> 1,100 points.
    before = await balance_of(customer.id)
    await consume(customer.id, 100_000)
    assert await balance_of(customer.id) - before == 1100

    # A refund takes the spend below the threshold, but the tier stays until the review.
    async with transaction() as conn:
        await refund_consumption(conn, external_ref=ext, refunded_fen=250_000, ref="refund:" + ext)
    assert (await PointsAccount.get(customer_id=customer.id)).tier_id == silver.id
    await tasks.review_tiers({})
    assert (await PointsAccount.get(customer_id=customer.id)).tier_id is None
    changes = await TierChange.filter(customer_id=customer.id).order_by("id")
    assert [(c.direction, c.to_tier_id) for c in changes] == [("up", silver.id), ("down", None)]
    assert changes[0].reason.startswith("consumption") and changes[1].reason == "periodic review"
    assert changes[1].detail["spend_fen"] == 400_000
    await assert_ledger_consistent(customer.id)


async def test_spend_leaves_the_window_and_review_downgrades(tier_table):
    silver, gold = tier_table
    customer = await make_customer()
    clock.set_now(datetime(2025, 3, 1, 4, tzinfo=UTC))
    await consume(customer.id, 2_100_000)
    assert (await PointsAccount.get(customer_id=customer.id)).tier_id == gold.id
    clock.set_now(datetime(2026, 3, 2, 4, tzinfo=UTC))
    await tasks.review_tiers({})
    await tasks.review_tiers({})
    assert (await PointsAccount.get(customer_id=customer.id)).tier_id is None
    assert await TierChange.filter(customer_id=customer.id, direction="down").count() == 1


async def test_qualified_referrals_upgrade_once_per_ref(tier_table):
    silver, _ = tier_table
    referrer = await make_customer()
    async with transaction() as conn:
        await record_qualified_referral(conn, referrer_id=referrer.id, ref="referral:a")
        await record_qualified_referral(conn, referrer_id=referrer.id, ref="referral:a")
    assert (await PointsAccount.get(customer_id=referrer.id)).tier_id is None
    async with transaction() as conn:
        change = await record_qualified_referral(conn, referrer_id=referrer.id, ref="referral:b:" + str(referrer.id))
    assert change is not None and change.to_tier_id == silver.id
    assert (await PointsAccount.get(customer_id=referrer.id)).tier_id == silver.id
