"""Acquisition sources at first login, and the staff referral program: a staff member earns a share of what
the customers they brought spend, settled in the finance batches with the staff member as payee, and never
for their own purchases."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta

from campaigns.referrals import settlement
from campaigns.referrals.models import StaffPayout, StaffPayoutStatus
from crm import tasks
from crm.models import Acquisition, SourceKind, StaffReward, StaffRewardStatus
from kernel import clock
from kernel.db import transaction
from kernel.identity.models import Customer
from tests.crm.factories import make_consumption
from tests.factories import make_customer, make_staff, staff_headers


async def _login(client, name: str, **extra) -> Customer:
    response = await client.post("/app/auth/login", json={"code": f"sandbox:{name}", **extra})
    assert response.status_code == 200, response.text
    return await Customer.get(id=response.json()["customer_id"])


async def _channel(client, headers, **body) -> dict:
    response = await client.post("/admin/crm/channels", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def test_sources_are_recorded_once_at_first_login(client):
    admin = staff_headers(await make_staff("campaign"))
    partner = await _channel(client, admin, kind="partner", code=f"P-{secrets.token_hex(4)}", name="Yoga studio")
    referrer = await make_customer()
    run = secrets.token_hex(4)
    by_partner = await _login(client, f"p-{run}", scene=partner["code"])
    by_friend = await _login(client, f"f-{run}", referral_code=referrer.referral_code, scene=partner["code"])
    organic = await _login(client, f"o-{run}")
    sources = {a.customer_id: a for a in await Acquisition.filter(
        customer_id__in=[by_partner.id, by_friend.id, organic.id])}
    assert sources[by_partner.id].kind == SourceKind.partner and sources[by_partner.id].channel_id == partner["id"]
    # A customer's referral code wins over a scene; the referral room binds the referral on its own.
    assert sources[by_friend.id].kind == SourceKind.customer_referral
    assert sources[by_friend.id].referrer_customer_id == referrer.id
    assert sources[organic.id].kind == SourceKind.organic
    # Logging in again with another scene changes nothing: first login only.
    await _login(client, f"o-{run}", scene=partner["code"])
    assert (await Acquisition.get(customer_id=organic.id)).kind == SourceKind.organic


async def test_staff_rewards_are_settled_with_the_staff_member_as_payee_never_for_own_purchases(client):
    admin = staff_headers(await make_staff("campaign"))
    consultant = await make_staff("front_desk")
    code = f"S-{secrets.token_hex(4)}"
    channel = await _channel(client, admin, kind="staff", code=code, name="顾问 Lin", staff_id=consultant.id)
    run = secrets.token_hex(4)
    brought = await _login(client, f"b-{run}", scene=code)
    own = await _login(client, f"own-{run}", scene=code)  # the consultant's own account, linked only later
    assert (await Acquisition.get(customer_id=own.id)).kind == SourceKind.staff

    await make_consumption(brought.id, 100_000, clock.now())
    await make_consumption(own.id, 80_000, clock.now())
    await tasks.staff_rewards({})
    rewards = {r.customer_id: r for r in await StaffReward.filter(staff_id=consultant.id)}
    assert {c: r.amount_fen for c, r in rewards.items()} == {brought.id: 5_000, own.id: 4_000}  # 5%, pending

    # Staff link the consultant's own account; part of the friend's purchase is refunded within the hold.
    linked = await client.patch(f"/admin/crm/channels/{channel['id']}", json={"staff_customer_id": own.id},
                                headers=admin)
    assert linked.status_code == 200, linked.text
    from points_mall.models import Consumption

    await Consumption.filter(id=rewards[brought.id].consumption_id).update(refunded_fen=40_000)
    clock.set_now(clock.now() + timedelta(days=8))
    await tasks.staff_rewards({})
    await tasks.staff_rewards({})  # twice: nothing more
    rewards = {r.customer_id: r for r in await StaffReward.filter(staff_id=consultant.id)}
    assert rewards[own.id].status == StaffRewardStatus.cancelled
    assert rewards[brought.id].status == StaffRewardStatus.handed_over
    assert rewards[brought.id].amount_fen == 3_000  # 5% of what was kept
    payouts = await StaffPayout.filter(staff_id=consultant.id)
    assert [(p.amount_fen, p.status) for p in payouts] == [(3_000, StaffPayoutStatus.payable)]

    # A customer who logs in with the code after the link is not the consultant's (own account refused).
    again = await _login(client, f"own2-{run}")
    await client.patch(f"/admin/crm/channels/{channel['id']}", json={"staff_customer_id": again.id}, headers=admin)
    maker, checker = await make_staff("finance"), await make_staff("finance")
    async with transaction() as conn:
        batch = await settlement.create_batch(conn, staff_id=maker.id, up_to=clock.local_today())
    async with transaction() as conn:
        lines = await settlement.payee_lines(conn, batch.id)
    staff_lines = [x for x in lines if x.payee_kind == "staff" and x.payee_id == consultant.id]
    assert [(x.reward_count, x.rewards_fen) for x in staff_lines] == [(1, 3_000)]
    assert batch.total_fen == sum(x.net_fen for x in lines)
    async with transaction() as conn:
        await settlement.approve_batch(conn, batch.id, staff_id=checker.id)
        await settlement.mark_paid(conn, batch.id, staff_id=checker.id, external_ref=f"bank-{secrets.token_hex(4)}")
    assert (await StaffPayout.get(staff_id=consultant.id)).status == StaffPayoutStatus.paid
    clock.set_now(None)


async def test_a_linked_own_account_never_accrues(client):
    admin = staff_headers(await make_staff("campaign"))
    consultant = await make_staff("front_desk")
    code = f"S-{secrets.token_hex(4)}"
    channel = await _channel(client, admin, kind="staff", code=code, name="self", staff_id=consultant.id)
    own = await _login(client, f"self-{secrets.token_hex(4)}", scene=code)
    await client.patch(f"/admin/crm/channels/{channel['id']}", json={"staff_customer_id": own.id}, headers=admin)
    await make_consumption(own.id, 500_000, clock.now())
    await tasks.staff_rewards({})
    assert not await StaffReward.filter(staff_id=consultant.id).exists()


async def test_a_consumption_committed_late_with_a_lower_id_is_rewarded_once(client):
    """A consumption's id is taken when its transaction inserts it, not when it commits: an order paid in a
    long transaction can commit after a later, higher id was already scanned. It must still be rewarded."""
    admin = staff_headers(await make_staff("campaign"))
    consultant = await make_staff("front_desk")
    code = f"S-{secrets.token_hex(4)}"
    await _channel(client, admin, kind="staff", code=code, name="顾问 Late", staff_id=consultant.id)
    run = secrets.token_hex(4)
    slow, quick = await _login(client, f"slow-{run}", scene=code), await _login(client, f"quick-{run}", scene=code)

    inserted, release = asyncio.Event(), asyncio.Event()
    late_id: list[int] = []

    async def slow_payment() -> None:
        # Its own task, so its own connection and transaction: the insert takes an id, the commit waits.
        async with transaction() as conn:
            late = await make_consumption(slow.id, 200_000, clock.now(), using_db=conn)
            late_id.append(late.id)
            inserted.set()
            await release.wait()

    holder = asyncio.create_task(slow_payment())
    await inserted.wait()
    early = await make_consumption(quick.id, 100_000, clock.now())
    assert early.id > late_id[0]
    await tasks.staff_rewards({})  # sees the higher id only: the lower one is not committed yet
    release.set()
    await holder
    more = [await make_consumption(quick.id, 20_000, clock.now()) for _ in range(5)]
    # Four runs at once (arq runs a job at least once, and cron may overlap a manual run): once each.
    await asyncio.gather(*[tasks.staff_rewards({}) for _ in range(4)])
    await tasks.staff_rewards({})  # and again: nothing more

    rewards = await StaffReward.filter(staff_id=consultant.id).order_by("consumption_id")
    assert [(r.consumption_id, r.amount_fen) for r in rewards] == [
        (late_id[0], 10_000), (early.id, 5_000), *[(c.id, 1_000) for c in more]]
    clock.set_now(clock.now() + timedelta(days=8))
    try:
        await tasks.staff_rewards({})
        await tasks.staff_rewards({})
    finally:
        clock.set_now(None)
    payouts = await StaffPayout.filter(staff_id=consultant.id).order_by("amount_fen")
    assert [p.amount_fen for p in payouts] == [1_000] * 5 + [5_000, 10_000]


async def test_a_consumption_after_the_programs_validity_earns_nothing(client):
    admin = staff_headers(await make_staff("campaign"))
    consultant = await make_staff("front_desk")
    code = f"S-{secrets.token_hex(4)}"
    await _channel(client, admin, kind="staff", code=code, name="顾问 Old", staff_id=consultant.id)
    brought = await _login(client, f"old-{secrets.token_hex(4)}", scene=code)
    arrived = (await Acquisition.get(customer_id=brought.id)).acquired_at
    within = await make_consumption(brought.id, 100_000, arrived + timedelta(days=365))
    await make_consumption(brought.id, 100_000, arrived + timedelta(days=365, seconds=1))
    clock.set_now(arrived + timedelta(days=366))
    try:
        assert (await tasks.staff_rewards({}))["rewards_accrued"] == 1
        assert (await tasks.staff_rewards({}))["rewards_accrued"] == 0
    finally:
        clock.set_now(None)
    assert [r.consumption_id for r in await StaffReward.filter(staff_id=consultant.id)] == [within.id]


async def test_a_consumption_the_scan_first_meets_past_its_horizon_is_expired_and_warned_about_once(client):
    """The scan looks at customers acquired within the validity plus STAFF_SCAN_SLACK (30 days); a consumption
    within the validity that it meets only later (the worker stopped longer than that) is never rewarded
    automatically. The run that meets it records it as an expired reward and warns once; the hourly runs after
    it say nothing more about it (they warned every hour, for ever), pay nothing, and finance lists it."""
    from structlog.testing import capture_logs

    from crm.acquisition import STAFF_SCAN_SLACK

    admin = staff_headers(await make_staff("campaign"))
    consultant = await make_staff("front_desk")
    code = f"S-{secrets.token_hex(4)}"
    await _channel(client, admin, kind="staff", code=code, name="顾问 Late", staff_id=consultant.id)
    brought = await _login(client, f"late-{secrets.token_hex(4)}", scene=code)
    arrived = (await Acquisition.get(customer_id=brought.id)).acquired_at
    late_clock = arrived + timedelta(days=365) + STAFF_SCAN_SLACK + timedelta(days=1)
    clock.set_now(late_clock)
    try:
        await tasks.staff_rewards({})  # other tests' customers, at this clock
        late = await make_consumption(brought.id, 100_000, arrived + timedelta(days=10))
        with capture_logs() as logs:
            runs = [await tasks.staff_rewards({}) for _ in range(3)]  # three hourly runs
            clock.set_now(late_clock + timedelta(days=8))  # and past the reward's hold
            runs.append(await tasks.staff_rewards({}))
    finally:
        clock.set_now(None)
    warnings = [e for e in logs if e["event"] == "crm.staff_rewards_outside_horizon"]
    assert warnings == [
        {"event": "crm.staff_rewards_outside_horizon", "log_level": "warning", "consumptions": 1,
         "acquired_before": (arrived + timedelta(days=1)).isoformat()}]
    assert [(r["rewards_accrued"], r["rewards_expired"]) for r in runs] == [(0, 1), (0, 0), (0, 0), (0, 0)]
    rewards = await StaffReward.filter(staff_id=consultant.id)
    # The share it would have earned, kept for finance to judge; never handed over, so no payout.
    assert [(r.consumption_id, r.status, r.base_fen, r.amount_fen) for r in rewards] == [
        (late.id, StaffRewardStatus.expired, 100_000, 5_000)]
    assert not await StaffPayout.filter(staff_id=consultant.id).exists()

    finance = staff_headers(await make_staff("finance"))
    listed = await client.get("/admin/crm/staff-rewards", params={"staff_id": consultant.id, "status": "expired"},
                              headers=finance)
    assert listed.status_code == 200, listed.text
    assert [(r["consumption_id"], r["status"], r["amount_fen"]) for r in listed.json()["items"]] == [
        (late.id, "expired", 5_000)]
    pending = await client.get("/admin/crm/staff-rewards", params={"staff_id": consultant.id, "status": "pending"},
                               headers=finance)
    assert pending.json()["total"] == 0


async def test_racing_runs_expire_each_late_consumption_once_and_warn_about_it_once(client, monkeypatch):
    """arq runs a job at least once and cron may overlap a manual run: four runs that all read the same late
    consumptions before any of them writes record one expired reward each, and together warn about each
    consumption once (the count is of rows written, not of rows read)."""
    from structlog.testing import capture_logs

    from crm import partners
    from crm.acquisition import STAFF_SCAN_SLACK

    admin = staff_headers(await make_staff("campaign"))
    consultant = await make_staff("front_desk")
    code = f"S-{secrets.token_hex(4)}"
    await _channel(client, admin, kind="staff", code=code, name="顾问 Race", staff_id=consultant.id)
    run = secrets.token_hex(4)
    brought = [await _login(client, f"race-{i}-{run}", scene=code) for i in range(3)]
    arrived = max([(await Acquisition.get(customer_id=c.id)).acquired_at for c in brought])
    clock.set_now(arrived + timedelta(days=365) + STAFF_SCAN_SLACK + timedelta(days=1))
    try:
        await tasks.staff_rewards({})  # other tests' customers, at this clock
        late = [await make_consumption(c.id, 20_000 * (i + 1), arrived + timedelta(days=i)) for i, c in
                enumerate(brought) for _ in range(2)]

        # Each racing run's transaction reads the late consumptions, then waits until all four have read them.
        read_by_all, racing = asyncio.Barrier(4), [True]
        read = partners.unrewarded_staff_consumptions_before

        async def read_then_wait(conn, **kwargs):
            rows = await read(conn, **kwargs)
            if rows and racing[0]:
                async with asyncio.timeout(30):
                    await read_by_all.wait()
            return rows

        monkeypatch.setattr(partners, "unrewarded_staff_consumptions_before", read_then_wait)
        with capture_logs() as logs:
            runs = await asyncio.gather(*[tasks.staff_rewards({}) for _ in range(4)])
            racing[0] = False
            runs.append(await tasks.staff_rewards({}))  # and the next hour's run
    finally:
        clock.set_now(None)
    warned = [e["consumptions"] for e in logs if e["event"] == "crm.staff_rewards_outside_horizon"]
    assert warned == [len(late)]
    assert sorted(r["rewards_expired"] for r in runs) == [0, 0, 0, 0, len(late)]
    rewards = await StaffReward.filter(staff_id=consultant.id).order_by("consumption_id")
    assert [(r.consumption_id, r.status) for r in rewards] == [(c.id, StaffRewardStatus.expired) for c in late]
