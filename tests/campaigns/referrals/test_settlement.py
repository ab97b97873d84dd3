"""Finance settlement: batches, totals to the fen in CSV and XLSX, maker-checker, one batch per reward."""

from __future__ import annotations

import asyncio
import csv
import io
import secrets
from datetime import timedelta

from openpyxl import load_workbook
from tortoise.functions import Sum

from campaigns.referrals.models import (
    AdjustmentStatus,
    BindingStatus,
    ReferralBinding,
    ReferralReward,
    RewardAdjustment,
    RewardKind,
    RewardStatus,
    SettlementBatch,
)
from kernel import clock
from kernel.identity.models import AuditLogEntry, Customer
from tests.campaigns.referrals.factories import make_program
from tests.factories import make_customer, make_staff, staff_headers


async def payable_reward(beneficiary: Customer, amount_fen: int, *, days_ago: int = 2) -> ReferralReward:
    """A cash reward whose hold ended `days_ago` days ago and that the release job already moved."""
    program = await make_program(exclusive=False, is_active=False)
    referee = await make_customer()
    now = clock.now()
    binding = await ReferralBinding.create(
        program=program, referee=referee, referrer=beneficiary, code=beneficiary.referral_code,
        status=BindingStatus.qualified, bound_at=now - timedelta(days=30), expires_at=now,
        qualify_until=now, qualified_at=now - timedelta(days=days_ago + 7),
    )
    return await ReferralReward.create(
        program=program, binding=binding, referee=referee, beneficiary=beneficiary, level=1,
        kind=RewardKind.cash, amount_fen=amount_fen, status=RewardStatus.payable,
        qualifying_consumption_id=secrets.randbelow(10**12), qualifying_amount_fen=amount_fen * 10,
        cap_month=now.strftime("%Y-%m"), hold_until=now - timedelta(days=days_ago), payable_at=now,
        created_at=now - timedelta(days=days_ago + 7),
    )


def today() -> str:
    return clock.local_today().isoformat()


async def test_batch_csv_and_xlsx_have_one_line_per_payee_and_totals_equal_the_sum(client):
    payees = [await make_customer(nickname=name) for name in ("王一", "=HYPERLINK(\"x\")", "Chloe")]
    amounts = {payees[0].id: [3333, 1], payees[1].id: [9999, 5001, 1], payees[2].id: [12345]}
    for payee in payees:
        for amount in amounts[payee.id]:
            await payable_reward(payee, amount)
    # An earlier payout of payee 0 was refunded: it is clawed back in this batch.
    refunded = await payable_reward(payees[0], 1000)
    await ReferralReward.filter(id=refunded.id).update(status=RewardStatus.paid, reversed_at=clock.now())
    await RewardAdjustment.create(reward=refunded, payee=payees[0], amount_fen=-1000, reason="refund",
                                  created_at=clock.now())

    finance = await make_staff("finance")
    created = await client.post("/admin/settlements", json={"up_to": today()}, headers=staff_headers(finance))
    assert created.status_code == 201, created.text
    batch = created.json()
    rewards_sum = await ReferralReward.filter(batch_id=batch["id"]).annotate(s=Sum("amount_fen")).values("s")
    adjustments_sum = await RewardAdjustment.filter(batch_id=batch["id"]).annotate(s=Sum("amount_fen")).values("s")
    expected_total = int(rewards_sum[0]["s"]) + int(adjustments_sum[0]["s"] or 0)
    assert batch["total_fen"] == expected_total

    export = await client.get(f"/admin/settlements/{batch['id']}/export", params={"format": "csv"},
                              headers=staff_headers(finance))
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(export.content.decode("utf-8-sig"))))
    header, lines, total = rows[0], rows[1:-1], rows[-1]
    assert header[0] == "payee_id" and total[0] == "TOTAL"
    net = header.index("net_fen")
    assert len({line[0] for line in lines}) == len(lines) == batch["payee_count"]  # one line per payee
    assert sum(int(line[net]) for line in lines) == int(total[net]) == expected_total
    by_payee = {int(line[0]): line for line in lines}
    assert int(by_payee[payees[0].id][net]) == 3333 + 1 - 1000
    assert int(by_payee[payees[1].id][net]) == 9999 + 5001 + 1
    assert by_payee[payees[1].id][1].startswith("'=")  # a nickname never runs as a spreadsheet formula
    assert by_payee[payees[2].id][header.index("net_yuan")] == "123.45"

    xlsx = await client.get(f"/admin/settlements/{batch['id']}/export", params={"format": "xlsx"},
                            headers=staff_headers(finance))
    assert xlsx.status_code == 200
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    values = list(sheet.iter_rows(values_only=True))
    assert values[0] == tuple(header)
    assert [r[0] for r in values[1:-1]] == [int(line[0]) for line in lines]
    assert [r[net] for r in values[1:-1]] == [int(line[net]) for line in lines]
    assert sum(r[net] for r in values[1:-1]) == values[-1][net] == expected_total
    assert await AuditLogEntry.filter(action="settlement.export", target_id=str(batch["id"])).count() == 2


async def test_maker_checker_approval(client):
    payee = await make_customer()
    await payable_reward(payee, 5000)
    maker, checker, campaign = await make_staff("finance"), await make_staff("finance"), await make_staff("campaign")
    batch = (await client.post("/admin/settlements", json={"up_to": today()}, headers=staff_headers(maker))).json()

    own = await client.post(f"/admin/settlements/{batch['id']}/approve", headers=staff_headers(maker))
    assert own.status_code == 403 and own.json()["code"] == "maker_checker"
    assert (await SettlementBatch.get(id=batch["id"])).status == "draft"
    not_finance = await client.post(f"/admin/settlements/{batch['id']}/approve", headers=staff_headers(campaign))
    assert not_finance.status_code == 403 and not_finance.json()["code"] == "role_required"
    early = await client.post(f"/admin/settlements/{batch['id']}/mark-paid", json={"external_ref": "X-1"},
                              headers=staff_headers(checker))
    assert early.status_code == 409 and early.json()["code"] == "settlement_batch_state"

    ok = await client.post(f"/admin/settlements/{batch['id']}/approve", headers=staff_headers(checker))
    assert ok.status_code == 200 and ok.json()["approved_by_id"] == checker.id
    twice = await client.post(f"/admin/settlements/{batch['id']}/approve", headers=staff_headers(checker))
    assert twice.status_code == 409

    ref = "WXPAY-" + secrets.token_hex(6)
    paid = await client.post(f"/admin/settlements/{batch['id']}/mark-paid", json={"external_ref": ref},
                             headers=staff_headers(checker))
    assert paid.status_code == 200 and paid.json()["external_ref"] == ref
    repeat = await client.post(f"/admin/settlements/{batch['id']}/mark-paid", json={"external_ref": ref},
                               headers=staff_headers(checker))
    assert repeat.status_code == 200  # the same press twice changes nothing
    audit = await AuditLogEntry.filter(target_type="settlement_batch", target_id=str(batch["id"])).order_by("id")
    assert [(a.action, a.staff_id) for a in audit][:3] == [
        ("settlement.create", maker.id), ("settlement.approve", checker.id), ("settlement.mark_paid", checker.id)
    ]

    # A payment reference pays one batch only.
    other_payee = await make_customer()
    await payable_reward(other_payee, 700)
    other = (await client.post("/admin/settlements", json={"up_to": today()}, headers=staff_headers(checker))).json()
    await client.post(f"/admin/settlements/{other['id']}/approve", headers=staff_headers(maker))
    reused = await client.post(f"/admin/settlements/{other['id']}/mark-paid", json={"external_ref": ref},
                               headers=staff_headers(maker))
    assert reused.status_code == 409 and reused.json()["code"] == "external_ref_taken"

    paid_list = (await client.get("/admin/settlements", params={"status": "paid", "limit": 200},
                                  headers=staff_headers(maker))).json()
    assert batch["id"] in {b["id"] for b in paid_list["items"]}
    assert all(b["status"] == "paid" for b in paid_list["items"]) and paid_list["total"] >= 1
    newest = (await client.get("/admin/settlements", params={"limit": 1}, headers=staff_headers(maker))).json()
    assert [b["id"] for b in newest["items"]] == [other["id"]] and newest["total"] >= 2


async def test_a_reward_is_never_in_two_batches_even_when_batches_are_created_at_once(client):
    payees = [await make_customer() for _ in range(5)]
    rewards = [await payable_reward(p, 1000 + i) for i, p in enumerate(payees)]
    staff = [await make_staff("finance") for _ in range(6)]
    responses = await asyncio.gather(
        *[client.post("/admin/settlements", json={"up_to": today()}, headers=staff_headers(s)) for s in staff]
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) >= 1 and set(statuses) <= {201, 409}, [r.text for r in responses]
    assert all(r.json()["code"] == "nothing_to_settle" for r in responses if r.status_code == 409)
    batch_ids = {r.json()["id"] for r in responses if r.status_code == 201}
    reloaded = [await ReferralReward.get(id=r.id) for r in rewards]
    assert all(r.status == RewardStatus.batched and r.batch_id in batch_ids for r in reloaded)
    # Each batch's recorded total is exactly what it claimed: nothing counted twice.
    for batch_id in batch_ids:
        batch = await SettlementBatch.get(id=batch_id)
        claimed = await ReferralReward.filter(batch_id=batch_id).annotate(s=Sum("amount_fen")).values("s")
        adjustments = await RewardAdjustment.filter(batch_id=batch_id).annotate(s=Sum("amount_fen")).values("s")
        assert batch.total_fen == int(claimed[0]["s"] or 0) + int(adjustments[0]["s"] or 0)

    # Nothing left: another batch is refused. Cancelling one gives its rewards back for the next.
    again = await client.post("/admin/settlements", json={"up_to": today()}, headers=staff_headers(staff[0]))
    assert again.status_code == 409 and again.json()["code"] == "nothing_to_settle"
    first = reloaded[0].batch_id
    cancelled = await client.post(f"/admin/settlements/{first}/cancel", headers=staff_headers(staff[0]))
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert (await ReferralReward.get(id=rewards[0].id)).status == RewardStatus.payable
    renewed = await client.post("/admin/settlements", json={"up_to": today()}, headers=staff_headers(staff[1]))
    assert renewed.status_code == 201
    assert (await ReferralReward.get(id=rewards[0].id)).batch_id == renewed.json()["id"]


async def test_rewards_due_after_the_date_wait_and_a_payee_owing_money_is_not_paid_negative(client):
    late_payee, owing_payee = await make_customer(), await make_customer()
    late = await payable_reward(late_payee, 4200, days_ago=-3)  # its hold ends in three days
    small = await payable_reward(owing_payee, 300)
    paid_earlier = await payable_reward(owing_payee, 2000, days_ago=20)
    await ReferralReward.filter(id=paid_earlier.id).update(status=RewardStatus.paid, reversed_at=clock.now())
    adjustment = await RewardAdjustment.create(reward=paid_earlier, payee=owing_payee, amount_fen=-2000,
                                               reason="refund", created_at=clock.now())
    anchor = await make_customer()
    await payable_reward(anchor, 100)  # so the batch is not empty

    finance = await make_staff("finance")
    batch = (await client.post("/admin/settlements", json={"up_to": today()}, headers=staff_headers(finance))).json()
    assert (await ReferralReward.get(id=late.id)).batch_id is None
    # 300 - 2000 < 0: the payee's items wait for a batch where the net is not negative.
    assert (await ReferralReward.get(id=small.id)).status == RewardStatus.payable
    assert (await RewardAdjustment.get(id=adjustment.id)).status == AdjustmentStatus.open
    review = (await client.get(f"/admin/settlements/{batch['id']}", headers=staff_headers(finance))).json()
    assert all(line["net_fen"] >= 0 for line in review["lines"])
    assert owing_payee.id not in {line["payee_id"] for line in review["lines"]}


async def test_a_settlement_date_beyond_a_year_ahead_is_refused_naming_the_field(client):
    await payable_reward(await make_customer(), 500)
    finance = await make_staff("finance")
    for up_to in ("9999-12-31", (clock.local_today() + timedelta(days=367)).isoformat()):
        refused = await client.post("/admin/settlements", json={"up_to": up_to}, headers=staff_headers(finance))
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "settlement_date_too_far" and refused.json()["detail"]["field"] == "up_to"
    assert not await SettlementBatch.filter(created_by_id=finance.id).exists()
    # A year ahead still settles what is payable today.
    ahead = (clock.local_today() + timedelta(days=366)).isoformat()
    created = await client.post("/admin/settlements", json={"up_to": ahead}, headers=staff_headers(finance))
    assert created.status_code == 201, created.text


async def test_only_finance_checks_a_batch_and_never_its_maker(client):
    # The attack: a member with only `admin` approved and marked paid a batch, and the maker could record
    # the payment of their own batch.
    await payable_reward(await make_customer(), 3_100)
    maker, checker = await make_staff("finance"), await make_staff("finance")
    admin, admin_and_finance = await make_staff("admin"), await make_staff("admin", "finance")
    batch = (await client.post("/admin/settlements", json={"up_to": today()}, headers=staff_headers(maker))).json()
    url = f"/admin/settlements/{batch['id']}"

    by_admin = await client.post(f"{url}/approve", headers=staff_headers(admin))
    assert by_admin.status_code == 403 and by_admin.json()["code"] == "role_required"
    assert by_admin.json()["detail"]["required"] == ["finance"]
    by_maker = await client.post(f"{url}/approve", headers=staff_headers(maker))
    assert by_maker.status_code == 403 and by_maker.json()["code"] == "maker_checker"
    assert (await SettlementBatch.get(id=batch["id"])).status == "draft"
    approved = await client.post(f"{url}/approve", headers=staff_headers(admin_and_finance))
    assert approved.status_code == 200, approved.text

    ref = {"external_ref": "BANK-" + secrets.token_hex(6)}
    paid_by_admin = await client.post(f"{url}/mark-paid", json=ref, headers=staff_headers(admin))
    assert paid_by_admin.status_code == 403 and paid_by_admin.json()["code"] == "role_required"
    paid_by_maker = await client.post(f"{url}/mark-paid", json=ref, headers=staff_headers(maker))
    assert paid_by_maker.status_code == 403 and paid_by_maker.json()["code"] == "maker_checker"
    assert "created" in paid_by_maker.json()["message"]
    assert (await SettlementBatch.get(id=batch["id"])).status == "approved"
    paid = await client.post(f"{url}/mark-paid", json=ref, headers=staff_headers(checker))
    assert paid.status_code == 200 and paid.json()["status"] == "paid"
    # Only what happened is in the trail: the refused steps left nothing.
    trail = await AuditLogEntry.filter(target_type="settlement_batch", target_id=str(batch["id"])).order_by("id")
    assert [(a.action, a.staff_id) for a in trail] == [
        ("settlement.create", maker.id), ("settlement.approve", admin_and_finance.id),
        ("settlement.mark_paid", checker.id),
    ]
