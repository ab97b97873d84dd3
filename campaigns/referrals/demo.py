"""Demo data of referrals: an active program, and Alice with a friend in every state (log in as "sandbox:friend-<state>").

The story is played through the real services at injected times (bind, consume, release, settle), so
the rows look like production rows. Idempotent: nothing happens once the demo friends exist (the
program itself may have been renamed or edited by staff since).
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from tortoise.backends.base.client import BaseDBAsyncClient

from campaigns.referrals import payouts, rewards, settlement
from campaigns.referrals.binding import bind_at_login
from campaigns.referrals.models import ReferrerRewardType, RewardKind, WelcomeRewardType
from campaigns.referrals.programs import create_program
from kernel import clock, crypto
from kernel.demo import sandbox_openid
from kernel.identity.models import Customer, StaffMember
from kernel.identity.service import create_staff, new_referral_code
from points_mall.consumption import record_consumption, refund_consumption

PROGRAM_NAME = "老带新 Bring a friend (demo)"

# state → (nickname, days ago the friend arrived); the rest of each story is in `load`.
FRIENDS = {
    "paid": ("周小雨", 45),
    "cancelled": ("吴佳怡", 44),
    "expired": ("郑可欣", 40),
    "batched": ("王思琪", 20),
    "payable": ("冯雅婷", 15),
    "held": ("陈梦洁", 3),
    "pending": ("褚晓彤", 2),
    "invited": ("卫诗涵", 1),
}


async def _friend(conn: BaseDBAsyncClient, state: str, phone: str | None = None) -> Customer:
    nickname, _ = FRIENDS[state]
    now = clock.now()
    return await Customer.create(
        openid=sandbox_openid(f"friend-{state}"), nickname=nickname, referral_code=new_referral_code(),
        phone_sealed=crypto.seal(phone) if phone else None,
        phone_hash=crypto.lookup_hash(phone) if phone else None,
        phone_masked=crypto.mask_phone(phone), phone_last4_hash=crypto.last4_hash(phone) if phone else None,
        created_at=now, last_login_at=now, using_db=conn,
    )


async def _demo_finance(conn: BaseDBAsyncClient, username: str) -> StaffMember:
    """A disabled account with a random password: it signs the demo batches and can never log in."""
    staff = await StaffMember.get_or_none(username=username, using_db=conn)
    if staff is None:
        staff = await create_staff(conn, username=username, password=secrets.token_urlsafe(24), roles=["finance"])
        staff.is_active = False
        await staff.save(using_db=conn, update_fields=["is_active"])
    return staff


async def _arrive_and_pay(conn: BaseDBAsyncClient, referrer: Customer, state: str, amount_fen: int | None,
                          phone: str | None = None) -> tuple[Customer, str | None]:
    """The friend logs in with Alice's code and (optionally) pays: what the login hook and the
    consumption job would do, run inline."""
    friend = await _friend(conn, state, phone)
    await bind_at_login(conn, friend, True, referrer.referral_code)
    if amount_fen is None:
        return friend, None
    ref = f"demo-referral-{state}"
    consumption = await record_consumption(
        conn, customer_id=friend.id, amount_fen=amount_fen, source="front_desk", external_ref=ref
    )
    await rewards.record_qualifying_consumption(
        conn, consumption_id=consumption.id, customer_id=friend.id, amount_fen=amount_fen,
        occurred_at=consumption.occurred_at,
    )
    return friend, ref


async def _release(conn: BaseDBAsyncClient) -> None:
    for kind in RewardKind:
        while (await payouts.release_due_chunk(conn, kind=kind, limit=1000))[0]:
            pass


async def load(conn: BaseDBAsyncClient) -> None:
    # Recognised by a demo friend's account, not the program's name: staff may rename the program, and
    # loading the story again would then create its customers twice and stop the development start.
    if await Customer.filter(openid=sandbox_openid("friend-paid")).using_db(conn).exists():
        return
    alice = await Customer.get_or_none(openid=sandbox_openid("alice"), using_db=conn)
    if alice is None:
        return
    now = clock.now()
    maker = await _demo_finance(conn, "demo.finance.maker")
    checker = await _demo_finance(conn, "demo.finance.checker")

    def at(days_ago: float):
        return clock.frozen_at(now - timedelta(days=days_ago))

    with at(60):
        await create_program(conn, dict(
            name=PROGRAM_NAME, is_active=True, starts_at=now - timedelta(days=60),
            description="Your friend's first treatment of ¥500 or more earns you ¥88; your friend gets 200 points.",
            referrer_reward_type=ReferrerRewardType.fixed_fen, referrer_reward_value=8800,
            second_level_reward_type=ReferrerRewardType.fixed_fen, second_level_reward_value=1000,
            welcome_reward_type=WelcomeRewardType.points, welcome_points=200,
            min_amount_fen=50000, hold_days=7, binding_valid_days=30, qualify_within_days=30,
            monthly_cap_count=20,
        ))
    with at(45):
        await _arrive_and_pay(conn, alice, "paid", 128000)
    with at(44):
        _, ref = await _arrive_and_pay(conn, alice, "cancelled", 68000)
    with at(43):  # refunded inside the hold: the reward is cancelled
        consumption = await refund_consumption(conn, external_ref=ref, refunded_fen=68000, ref="demo-referral-refund")
        await payouts.record_refund(
            conn, consumption_id=consumption.id, customer_id=consumption.customer_id, refunded_fen=68000
        )
    with at(40):  # never paid: the binding ran out
        await _arrive_and_pay(conn, alice, "expired", None)
    with at(30):
        await _release(conn)
        batch = await settlement.create_batch(conn, staff_id=maker.id, up_to=clock.local_today(), note="demo")
        await settlement.approve_batch(conn, batch.id, staff_id=checker.id)
        await settlement.mark_paid(conn, batch.id, staff_id=checker.id, external_ref=f"DEMO-PAY-{batch.id}")
    with at(20):
        await _arrive_and_pay(conn, alice, "batched", 99000)
    with at(15):
        await _arrive_and_pay(conn, alice, "payable", 56000)
    with at(10):
        await _release(conn)
        await settlement.create_batch(conn, staff_id=maker.id, up_to=clock.local_today(), note="demo, to review")
    with at(5):
        await _release(conn)
    with at(3):  # shares Alice's phone number: held for staff review
        await _arrive_and_pay(conn, alice, "held", 75000, phone="13800001111")
    with at(2):
        await _arrive_and_pay(conn, alice, "pending", 150000)
    with at(1):
        await _arrive_and_pay(conn, alice, "invited", None)
        # Refusals staff can look at: Bella tries her own code, David a code that does not exist.
        for name, code in (("bella", None), ("david", "NOSUCH99")):
            customer = await Customer.get_or_none(openid=sandbox_openid(name), using_db=conn)
            if customer is not None:
                await bind_at_login(conn, customer, False, code or customer.referral_code)
