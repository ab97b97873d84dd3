"""Campaign, mall, voucher, points, referral-reward and RFM reports against brute force over the source
rows: each figure recomputed here from the other rooms' tables, never from the summary tables."""

from __future__ import annotations

import random
import secrets
from collections import defaultdict
from datetime import date, timedelta

from campaigns.groupbuy.models import Campaign, CampaignEntry, CampaignSku, Group
from orders.models import Order
from campaigns.referrals.models import ReferralReward, RewardAdjustment
from crm import tasks as crm_tasks
from crm.models import RfmScore
from kernel import clock
from kernel.db import transaction
from kernel.identity.service import audit
from points_mall import ledger
from points_mall.models import MallRedemption, PointsAccount, PointsLedgerEntry, PointsLot, Voucher
from points_mall.vouchers import issue_vouchers, redeem_voucher
from reports import summaries
from tests.booking.factories import make_branch
from tests.factories import make_customer, make_staff
from tests.reports.factories import SH, consume, fold, local
from tests.reports.test_sales import report

NOW = local(2034, 3, 10)


async def _order(customer_id: int, paid: int, refunded: int) -> Order:
    return await Order.create(customer_id=customer_id, out_trade_no=secrets.token_hex(12), description="t",
                              total_fen=paid or 100, status="refunded" if refunded else ("paid" if paid else "closed"),
                              expires_at=NOW, paid_fen=paid, refunded_fen=refunded, created_at=NOW)


async def test_group_buy_funnel_equals_the_entries_and_groups():
    rng = random.Random(3)
    branch = (await make_branch()).id
    customers = [(await make_customer()).id for _ in range(8)]
    expected = {}
    for n in range(3):
        campaign = await Campaign.create(
            kind="bestie_card" if n < 2 else "category", title=f"Campaign {n}", status="live",
            starts_at=local(2034, 2, 1 + n), ends_at=local(2034, 2, 20 + n), group_size=3,
            branch_ids=[branch] if n != 1 else None, created_at=NOW, updated_at=NOW,
        )
        sku = await CampaignSku.create(campaign=campaign, title="s", original_price_fen=20_000,
                                       group_price_fen=9_900, stock_total=100, stock_left=100)
        want = defaultdict(int)
        for _ in range(rng.randint(2, 5) if n < 2 else 0):
            status = rng.choice(["open", "succeeded", "succeeded", "failed"])
            virtual = status == "succeeded" and rng.random() < 0.4
            views = rng.randint(0, 40)
            group = await Group.create(campaign=campaign, sku_id=sku.id, leader_id=customers[0], size=3,
                                       status=status, deadline=NOW, virtual=virtual, share_views=views, created_at=NOW,
                                       open_slot=None)
            want["views"] += views
            want["opened"] += 1
            want["succeeded"] += status == "succeeded"
            want["virtually_completed"] += virtual
            want["failed"] += status == "failed"
            for seat, role in enumerate(["leader", "member", "member"][: rng.randint(1, 3)]):
                await _entry(rng, campaign, sku, group.id, customers[seat], role, want)
        for _ in range(rng.randint(2, 6) if n == 2 else 0):
            await _entry(rng, campaign, sku, None, rng.choice(customers), "buyer", want)
        expected[campaign.id] = want
    await fold(NOW)
    got = await report("group-buys", date_from=date(2034, 2, 1), date_to=date(2034, 2, 28), branch_id=branch)
    keys = ["views", "opened", "joined", "paid", "succeeded", "virtually_completed", "failed", "refunded",
            "paid_fen", "refunded_fen"]
    rows = {r[0]: r[3:13] for r in got.rows if r[0] in expected}
    assert rows == {cid: [w[k] for k in keys] for cid, w in expected.items()}
    # Campaigns 0 and 1 ended (clinic days 20 and 21 February) before the range; campaign 2 ends on its first day.
    got = await report("group-buys", date_from=date(2034, 2, 22), date_to=date(2034, 2, 28), branch_id=branch)
    assert {r[0] for r in got.rows} & set(expected) == {list(expected)[2]}


async def _entry(rng, campaign, sku, group_id, customer_id, role, want) -> None:
    status = rng.choice(["held", "paid", "fulfilled", "released", "refunded", "refunding"])
    paid = status not in ("held", "released")
    price = 9_900
    refunded = price if status in ("refunded", "refunding") and rng.random() < 0.8 else 0
    order = await _order(customer_id, price if paid else 0, refunded)
    await CampaignEntry.create(campaign_id=campaign.id, sku_id=sku.id, group_id=group_id, customer_id=customer_id,
                               order_id=order.id, role=role, unit_price_fen=price, status=status, created_at=NOW,
                               paid_at=NOW if paid else None, active_slot=None)
    want["joined"] += role in ("member", "buyer")
    want["paid"] += paid
    want["refunded"] += status in ("refunded", "refunding")
    want["paid_fen"] += price if paid else 0
    want["refunded_fen"] += refunded if paid else 0


async def test_mall_vouchers_points_and_referral_rewards_equal_their_sources():
    rng = random.Random(5)
    branch = (await make_branch()).id
    desk = await make_staff("front_desk")
    customers = [(await make_customer()).id for _ in range(6)]
    # Points earned and spent at instants either side of midnight in Shanghai.
    for customer_id in customers:
        for k in range(3):
            clock.set_now(rng.choice([local(2034, 1, 31, 23, 59, 59), local(2034, 2, 1, 0, 0, 0), local(2034, 2, 14)]))
            async with transaction() as conn:
                await ledger.earn_points(conn, customer_id=customer_id, points=rng.randint(1, 500), kind="check_in",
                                         ref=f"rep-earn-{secrets.token_hex(6)}", reason="t")
        clock.set_now(local(2034, 2, 20))
        async with transaction() as conn:
            await ledger.spend_points(conn, customer_id=customer_id, points=1, kind="redemption",
                                      ref=f"rep-spend-{secrets.token_hex(6)}", reason="t")
    # Mall redemptions (made on the clinic day of created_at; some units given back).
    for customer_id in customers:
        at = rng.choice([local(2034, 1, 31, 23, 59, 59), local(2034, 2, 1, 0, 0, 0)])
        q = rng.randint(1, 3)
        await MallRedemption.create(customer_id=customer_id, item_id=1, idempotency_key=secrets.token_hex(6),
                                    quantity=q, unit_points=10, points_spent=10 * q, item_title="t", item_kind="gift",
                                    cancelled_quantity=rng.randint(0, q), ledger_ref=secrets.token_hex(6), created_at=at)
    # Vouchers redeemed at the branch as the front desk does it (the redemption and its audit row together).
    for customer_id in customers[:4]:
        clock.set_now(local(2034, 2, 2))
        async with transaction() as conn:
            (voucher,) = await issue_vouchers(conn, customer_id=customer_id, source_type="reports_test",
                                              source_id=secrets.token_hex(4), title="t", valid_until=NOW + timedelta(days=9))
        clock.set_now(rng.choice([local(2034, 2, 28, 23, 59, 59), local(2034, 3, 1, 0, 0, 0)]))
        async with transaction() as conn:
            redeemed = await redeem_voucher(conn, code=voucher.code, branch_id=branch, staff_id=desk.id)
            await audit(conn, desk.id, "voucher.redeem", "voucher", redeemed.id, {"branch_id": branch})

    await fold(NOW)
    range_ = dict(date_from=date(2034, 1, 1), date_to=date(2034, 3, 31))

    # Points: the ledger's movements per clinic month, straight from the ledger.
    entries = await PointsLedgerEntry.filter(occurred_at__gte=local(2034, 1, 1, 0, 0, 0),
                                             occurred_at__lt=local(2034, 4, 1, 0, 0, 0))
    per = defaultdict(lambda: [0, 0, 0])
    for e in entries:
        cell = per[e.occurred_at.astimezone(SH).strftime("%Y-%m")]
        if e.delta > 0:
            cell[0] += e.delta
        elif e.kind == "expiry":
            cell[2] -= e.delta
        else:
            cell[1] -= e.delta
    got = await report("points", **range_)
    assert {r[0]: r[1:4] for r in got.rows} == {m: per[m] for m in ("2034-01", "2034-02", "2034-03")}
    assert per["2034-01"][0] > 0 and per["2034-02"][0] > 0  # the boundary instants landed on both sides
    # Liability: the snapshot taken by the fold equals the accounts and lots at that instant.
    march = got.rows[2]
    balance = sum(a.balance for a in await PointsAccount.all())
    pending = sum(a.pending for a in await PointsAccount.all())
    lots = await PointsLot.filter(remaining__gt=0, expires_at__gt=NOW)
    e30 = sum(lot.remaining for lot in lots if lot.expires_at <= NOW + timedelta(days=30))
    e90 = sum(lot.remaining for lot in lots if lot.expires_at <= NOW + timedelta(days=90))
    assert march[5:9] == [balance, pending, e30, e90]

    # Mall: redemptions on their clinic day.
    reds = await MallRedemption.filter(created_at__gte=local(2034, 1, 1, 0, 0, 0), created_at__lt=local(2034, 4, 1, 0, 0, 0))
    per_mall = defaultdict(lambda: [0, 0, 0, 0])
    for r in reds:
        cell = per_mall[r.created_at.astimezone(SH).strftime("%Y-%m")]
        cell[0] += 1
        cell[1] += r.quantity
        cell[2] += r.cancelled_quantity
        cell[3] += r.points_spent
    got = await report("mall", branch_id=branch, **range_)
    assert {r[0]: r[1:5] for r in got.rows} == {m: per_mall[m] for m in ("2034-01", "2034-02", "2034-03")}
    used = await Voucher.filter(redeemed_branch_id=branch)
    per_used = defaultdict(int)
    for v in used:
        per_used[v.redeemed_at.astimezone(SH).strftime("%Y-%m")] += 1
    assert {r[0]: r[5] for r in got.rows} == {m: per_used[m] for m in ("2034-01", "2034-02", "2034-03")}
    assert per_used["2034-02"] + per_used["2034-03"] == 4

    # The rebuild agrees with the folds on all of it.
    async with transaction() as conn:
        await summaries.rebuild(conn)
    assert (await report("mall", branch_id=branch, **range_)).rows == got.rows


async def test_referral_rewards_against_referred_revenue():
    referrer, friend = await make_customer(), await make_customer()
    from tests.reports.factories import acquire
    await acquire(friend.id, "customer_referral", local(2034, 5, 1))
    branch = (await make_branch()).id
    await consume(friend.id, 200_000, local(2034, 5, 2), branch)
    # A paid cash reward and a points reward in May; the cash one clawed back in June after a refund.
    from campaigns.referrals.models import ReferralBinding, ReferralProgram
    program = await ReferralProgram.create(name="p", starts_at=local(2034, 1, 1), referrer_reward_type="fixed_fen",
                                           referrer_reward_value=5_000, created_at=NOW, updated_at=NOW)
    binding = await ReferralBinding.create(program=program, referee=friend, referrer=referrer, code="x", status="qualified",
                                           bound_at=local(2034, 5, 1), expires_at=NOW, qualify_until=NOW)
    cash = await ReferralReward.create(program=program, binding=binding, referee=friend, beneficiary=referrer, level=1,
                                       kind="cash", amount_fen=5_000, status="paid", qualifying_consumption_id=1,
                                       qualifying_amount_fen=200_000, cap_month="2034-05", hold_until=NOW,
                                       paid_at=local(2034, 5, 31, 23, 59, 59), created_at=NOW)
    await ReferralReward.create(program=program, binding=binding, referee=friend, beneficiary=referrer, level=2,
                                kind="points", points=300, status="paid", qualifying_consumption_id=1,
                                qualifying_amount_fen=200_000, cap_month="2034-05", hold_until=NOW,
                                paid_at=local(2034, 6, 1, 0, 0, 0), created_at=NOW)
    await RewardAdjustment.create(reward=cash, payee=referrer, amount_fen=-5_000, reason="refund",
                                  created_at=local(2034, 6, 3))
    await fold(local(2034, 6, 10))
    got = await report("referral-roi", date_from=date(2034, 5, 1), date_to=date(2034, 6, 30), branch_id=branch)
    assert got.rows == [["2034-05", 1, 5_000, 0, 0, 5_000, 200_000, 250],
                        ["2034-06", 1, 0, 300, 5_000, -5_000, 0, None]]


async def test_rfm_sizes_and_movements_are_the_crm_scores():
    customers = [(await make_customer()).id for _ in range(3)]
    branch = (await make_branch()).id
    for customer_id in customers:
        await consume(customer_id, 400_000, local(2034, 7, 1), branch)
    clock.set_now(local(2034, 7, 2))
    await crm_tasks.score_customers({})
    await fold(local(2034, 7, 2))
    clock.set_now(local(2034, 12, 2))  # five months on: everyone drops out of "recent"
    await crm_tasks.score_customers({})
    await fold(local(2034, 12, 2))
    got = await report("rfm-classes", date_from=date(2034, 7, 2), date_to=date(2034, 12, 2))
    scores = await RfmScore.filter(as_of=date(2034, 12, 2))  # customers not rescored keep an older day
    now_sizes = defaultdict(int)
    for s in scores:
        now_sizes[s.rfm_class.value] += 1
    assert {r[0]: r[3] for r in got.rows} == {k: now_sizes.get(k, 0) for k in (r[0] for r in got.rows)}
    moves = await report("rfm-movements", date_from=date(2034, 7, 2), date_to=date(2034, 12, 2))
    from crm.models import RfmMovement
    recorded = defaultdict(int)
    for m in await RfmMovement.filter(as_of__gt=date(2034, 7, 2), as_of__lte=date(2034, 12, 2)):
        recorded[(m.from_class.value if m.from_class else "", m.to_class.value)] += 1
    assert {(r[0], r[1]): r[2] for r in moves.rows} == dict(recorded)
    assert recorded, "the scoring five months later should move our customers"
