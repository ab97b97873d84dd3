"""Coupons from the CRM (orders room's templates, through crm/partners.py): an outreach gives one once per
outreach and customer within its stock, never to the opted-out or the holdout; the birthday gift gives one once
per customer and year (with or instead of its voucher); a visit the front desk completes gives the after-visit
coupon once per booking. An unknown or switched-off template is refused naming the field."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from crm import occasions, tasks
from crm import outreach as outreach_service
from crm.models import BirthdayGift, CouponRule, CustomerTag, OutreachRecipient, TagKind
from crm.outreach import set_opt_out
from crm.partners import BIRTHDAY_VOUCHER_SOURCE, OUTREACH_VOUCHER_SOURCE
from crm.settings import override
from kernel import clock
from kernel.db import transaction
from kernel.outbox import enqueue
from kernel.wechat.miniprogram import SandboxMiniProgram
from orders.product_models import Coupon, CouponTemplate
from points_mall.models import Voucher
from tests.crm.factories import make_segment, make_tag, only
from tests.factories import customer_headers, make_customer, make_staff, run_worker, staff_headers
from tests.orders.shop_factories import give_coupon, make_template

SH = ZoneInfo("Asia/Shanghai")
CTX = {"miniprogram": SandboxMiniProgram()}  # these outreach send no message
DAYTIME = datetime(2026, 5, 20, 10, 0, tzinfo=SH)


@pytest.fixture(autouse=True)
async def no_rules_left_behind():
    """The occasions' rules are one row each for the whole database: leave none for other tests."""
    await CouponRule.all().delete()
    yield
    await CouponRule.all().delete()


async def tagged_members(n: int):
    marker = await make_tag()
    members = [await make_customer() for _ in range(n)]
    for c in members:
        await CustomerTag.create(customer_id=c.id, tag_id=marker.id, source=TagKind.manual, created_at=clock.now())
    return members, await make_segment({"groups": [only(marker.id)]})


async def draft(segment_id: int, **values):
    fields = dict(name="coupon outreach", segment_id=segment_id, holdout_bp=0) | values
    async with transaction() as conn:
        outreach = await outreach_service.create_outreach(conn, fields, staff_id=1)
        await outreach_service.schedule(conn, outreach.id, at=None)
    return outreach


async def test_an_outreach_gives_its_coupon_once_per_customer_within_stock_and_never_to_the_opted_out():
    clock.set_now(DAYTIME)
    template = await make_template("cash_off", value_fen=2000, threshold_fen=10000)
    members, segment = await tagged_members(9)
    async with transaction() as conn:
        await set_opt_out(conn, members[0].id, True)
    outreach = await draft(segment.id, coupon_template_id=template.id, voucher_stock=5)
    with override(outreach_chunk=2):
        await asyncio.gather(*[tasks.run_outreach(CTX, outreach.id) for _ in range(4)])
        await tasks.run_outreach(CTX, outreach.id)
        await tasks.run_outreach(CTX, outreach.id)  # run again: nothing more
    coupons = await Coupon.filter(source="outreach", source_ref=str(outreach.id))
    assert len(coupons) == 5 and len({c.customer_id for c in coupons}) == 5
    assert members[0].id not in {c.customer_id for c in coupons}
    assert all(c.template_id == template.id for c in coupons)
    outcomes = Counter(await OutreachRecipient.filter(outreach_id=outreach.id).values_list("coupon_outcome", flat=True))
    assert outcomes == {"issued": 5, "no_stock": 3, "": 1}
    # A coupon-only outreach issues no points-mall voucher.
    assert not await Voucher.filter(source_type=OUTREACH_VOUCHER_SOURCE, source_id__startswith=f"{outreach.id}:").exists()


async def test_an_outreach_gives_a_voucher_and_a_coupon_and_the_holdout_gets_neither():
    clock.set_now(DAYTIME)
    template = await make_template("percent_off", discount_bp=1000)
    members, segment = await tagged_members(10)
    outreach = await draft(segment.id, coupon_template_id=template.id, voucher_title="Spring gift", holdout_bp=3000)
    await tasks.run_outreach(CTX, outreach.id)
    recipients = await OutreachRecipient.filter(outreach_id=outreach.id)
    treated = [r for r in recipients if not r.holdout]
    assert treated and all(r.coupon_id is not None and r.voucher_id is not None for r in treated)
    assert all(r.coupon_id is None and r.voucher_id is None for r in recipients if r.holdout)
    assert await Coupon.filter(source="outreach", source_ref=str(outreach.id)).count() == len(treated)


async def test_a_template_at_its_per_customer_limit_is_skipped_not_an_error():
    clock.set_now(DAYTIME)
    template = await make_template("cash_off", value_fen=500, threshold_fen=0, per_customer_limit=1)
    members, segment = await tagged_members(2)
    from orders.coupons import issue_coupon

    async with transaction() as conn:
        await issue_coupon(conn, members[0].id, template.id, "staff", "earlier")
    outreach = await draft(segment.id, coupon_template_id=template.id)
    assert await tasks.run_outreach(CTX, outreach.id) == "done"
    outcomes = {r.customer_id: r.coupon_outcome for r in await OutreachRecipient.filter(outreach_id=outreach.id)}
    assert outcomes == {members[0].id: "limit_reached", members[1].id: "issued"}


async def test_a_template_switched_off_before_the_run_is_recorded_and_counted_as_off_not_as_at_limit(client):
    """Staff switch the coupon template off after scheduling: no coupon is given, and each recipient's outcome
    (and the results' counts) says the template was off, not that the customer was at its limit."""
    clock.set_now(DAYTIME)
    template = await make_template("cash_off", value_fen=500, threshold_fen=0, per_customer_limit=1)
    members, segment = await tagged_members(3)
    outreach = await draft(segment.id, coupon_template_id=template.id)
    await CouponTemplate.filter(id=template.id).update(is_active=False)
    assert await tasks.run_outreach(CTX, outreach.id) == "done"
    outcomes = Counter(await OutreachRecipient.filter(outreach_id=outreach.id).values_list("coupon_outcome", flat=True))
    assert outcomes == {"template_off": 3}
    assert not await Coupon.filter(source="outreach", source_ref=str(outreach.id)).exists()
    results = await client.get(f"/admin/crm/outreach/{outreach.id}",
                               headers=staff_headers(await make_staff("campaign")))
    counts = results.json()["counts"]
    assert counts["coupons_template_off"] == 3 and counts["coupons_issued"] == 0
    assert "coupons_limit_reached" not in counts


async def test_staff_naming_an_unknown_or_switched_off_template_are_told_which_field(client):
    campaign = await make_staff("campaign")
    headers = staff_headers(campaign)
    _, segment = await tagged_members(1)
    off = await make_template("cash_off", value_fen=100, threshold_fen=0)
    await CouponTemplate.filter(id=off.id).update(is_active=False)
    for template_id in (2_000_000_000, off.id):
        refused = await client.post("/admin/crm/outreach", headers=headers, json={
            "name": "x", "segment_id": segment.id, "coupon_template_id": template_id})
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"]["field"] == "coupon_template_id"
        rule = await client.put("/admin/crm/coupon-rules/after_visit", headers=headers,
                                json={"coupon_template_id": template_id})
        assert rule.status_code == 422 and rule.json()["detail"]["field"] == "coupon_template_id"
    for too_large in (2**63, 2**64):  # past a BIGINT: refused by the schema, never a driver error
        refused = await client.post("/admin/crm/outreach", headers=headers, json={
            "name": "x", "segment_id": segment.id, "coupon_template_id": too_large})
        rule = await client.put("/admin/crm/coupon-rules/after_visit", headers=headers,
                                json={"coupon_template_id": too_large})
        for answer in (refused, rule):
            assert answer.status_code in (400, 422) and answer.json()["detail"]["field"] == "coupon_template_id"
    nothing = await client.put("/admin/crm/coupon-rules/birthday", headers=headers,
                               json={"coupon_template_id": None, "with_voucher": False})
    assert nothing.status_code == 422 and nothing.json()["detail"]["field"] == "with_voucher"
    good = await make_template("cash_off", value_fen=100, threshold_fen=0)
    made = await client.post("/admin/crm/outreach", headers=headers, json={
        "name": "coupon only", "segment_id": segment.id, "coupon_template_id": good.id})
    assert made.status_code == 201 and made.json()["coupon_template_id"] == good.id
    front_desk = await make_staff("front_desk")
    assert (await client.get("/admin/crm/coupon-rules", headers=staff_headers(front_desk))).status_code == 403


async def test_the_birthday_gives_its_coupon_once_per_year_across_the_year_boundary(client):
    template = await make_template("cash_off", value_fen=3000, threshold_fen=0, per_customer_limit=10)
    campaign = await make_staff("campaign")
    set_rule = await client.put("/admin/crm/coupon-rules/birthday", headers=staff_headers(campaign),
                                json={"coupon_template_id": template.id, "with_voucher": False})
    assert set_rule.status_code == 200, set_rule.text
    rules = (await client.get("/admin/crm/coupon-rules", headers=staff_headers(campaign))).json()
    assert [(r["occasion"], r["coupon_template_id"], r["with_voucher"]) for r in rules] == [
        ("birthday", template.id, False), ("after_visit", None, True)]
    december = await make_customer(birth_date=date(1990, 12, 31))
    day = datetime(2026, 12, 30, 1, 20, tzinfo=SH)
    while day < datetime(2028, 1, 2, tzinfo=SH):
        clock.set_now(day)
        await tasks.birthday_gifts({})
        await tasks.birthday_gifts({})
        day += timedelta(days=3 if day.month not in (12, 1) else 1)
    refs = sorted(await Coupon.filter(customer_id=december.id, source="birthday").values_list("source_ref", flat=True))
    assert refs == ["2026", "2027"]
    # Instead of the voucher, as the rule says.
    assert not await Voucher.filter(customer_id=december.id, source_type=BIRTHDAY_VOUCHER_SOURCE).exists()


async def test_a_completed_visit_gives_the_after_visit_coupon_once_per_booking(client, redis):
    from booking import service as booking_service
    from tests.booking.factories import make_slot

    template = await make_template("cash_off", value_fen=1000, threshold_fen=0, per_customer_limit=10)
    campaign = await make_staff("campaign")
    assert (await client.put("/admin/crm/coupon-rules/after_visit", headers=staff_headers(campaign),
                             json={"coupon_template_id": template.id})).status_code == 200
    customer, opted_out = await make_customer(), await make_customer()
    async with transaction() as conn:
        await set_opt_out(conn, opted_out.id, True)
    bookings = []
    for hours, who in enumerate((customer, customer, opted_out)):
        slot = await make_slot(starts_in=timedelta(days=2, hours=hours))
        made = await client.post("/app/bookings", json={"slot_id": slot.id}, headers=customer_headers(who))
        assert made.status_code == 201, made.text
        bookings.append(made.json()["id"])
    clock.set_now(clock.now() + timedelta(days=2, hours=3))
    for booking_id in bookings[:1] + bookings[2:]:
        async with transaction() as conn:
            await booking_service.transition(conn, booking_id, "arrive")
        async with transaction() as conn:
            await booking_service.transition(conn, booking_id, "complete")
    async with transaction() as conn:
        await enqueue(conn, "crm.visit_completed", bookings[0])  # arq may run a job twice
        await enqueue(conn, "crm.visit_completed", bookings[1])  # not completed: nothing
    worker = await run_worker(redis)
    assert worker.jobs_failed == 0
    given = await Coupon.filter(source="visit", customer_id__in=[customer.id, opted_out.id])
    assert [(c.customer_id, c.source_ref, c.template_id) for c in given] == [
        (customer.id, f"booking:{bookings[0]}", template.id)]


async def test_an_outreach_whose_segment_was_deleted_ends_cancelled_instead_of_failing_for_ever():
    from crm import segments
    from crm.models import Outreach, OutreachStatus

    _, segment = await tagged_members(2)
    outreach = await draft(segment.id, voucher_title="gift")
    async with transaction() as conn:
        await segments.delete_segment(conn, segment.id)
    async with transaction() as conn:
        assert await outreach_service.take_members(conn, outreach.id) is None
    after = await Outreach.get(id=outreach.id)
    assert after.status == OutreachStatus.cancelled and after.finished_at is not None


async def test_a_birthday_that_could_give_nothing_is_not_counted_and_is_given_when_it_can(client):
    """The coupon-only birthday rule with its template switched off, or a customer holding as many of it as it
    allows: nothing is given, the run says so, and a later run of the month gives it once it can."""
    template = await make_template("cash_off", value_fen=3000, threshold_fen=0, per_customer_limit=1)
    campaign = staff_headers(await make_staff("campaign"))
    assert (await client.put("/admin/crm/coupon-rules/birthday", headers=campaign,
                             json={"coupon_template_id": template.id, "with_voucher": False})).status_code == 200
    switched_off = await make_customer(birth_date=date(1991, 7, 9))
    holder = await make_customer(birth_date=date(1993, 7, 21))
    await give_coupon(holder.id, template.id)  # already at the template's limit of one
    await CouponTemplate.filter(id=template.id).update(is_active=False)
    clock.set_now(datetime(2031, 7, 1, 1, 20, tzinfo=SH))

    async def chunk(customer):
        # One customer at a time: the suite's database holds other tests' July birthdays.
        async with transaction() as conn:
            return (await occasions.birthday_chunk(conn, customer.id - 1, 1))[1]

    assert await chunk(switched_off) == occasions.BirthdayRun(given=0, not_given=1)
    assert await chunk(holder) == occasions.BirthdayRun(given=0, not_given=1)
    assert not await BirthdayGift.filter(customer_id__in=[switched_off.id, holder.id]).exists()

    await CouponTemplate.filter(id=template.id).update(is_active=True)  # staff switch it back on
    clock.set_now(datetime(2031, 7, 2, 1, 20, tzinfo=SH))
    assert await chunk(switched_off) == occasions.BirthdayRun(given=1, coupons=1)
    assert await chunk(holder) == occasions.BirthdayRun(given=0, not_given=1)
    await tasks.birthday_gifts({})  # and the daily job again: nothing more
    given = await Coupon.filter(customer_id__in=[switched_off.id, holder.id], source="birthday")
    assert [(c.customer_id, c.source_ref) for c in given] == [(switched_off.id, "2031")]
    gift = await BirthdayGift.get(customer_id=switched_off.id, year=2031)
    assert gift.coupon_id == given[0].id and gift.voucher_id is None


async def test_a_birthday_voucher_given_without_its_coupon_gets_the_coupon_later_in_the_month_never_a_second_voucher(
        client):
    """The rule gives a voucher and a coupon; the coupon's template is switched off on the customer's first run.
    The gift row records the voucher and why the coupon is missing; once staff switch the template back on, a
    later run of the month gives the coupon alone, and runs after that give nothing."""
    template = await make_template("cash_off", value_fen=2000, threshold_fen=0, per_customer_limit=5)
    campaign = staff_headers(await make_staff("campaign"))
    assert (await client.put("/admin/crm/coupon-rules/birthday", headers=campaign,
                             json={"coupon_template_id": template.id, "with_voucher": True})).status_code == 200
    customer = await make_customer(birth_date=date(1988, 7, 14))
    await CouponTemplate.filter(id=template.id).update(is_active=False)
    clock.set_now(datetime(2032, 7, 1, 1, 20, tzinfo=SH))

    async def chunk():
        # This customer alone: the suite's database holds other tests' July birthdays.
        async with transaction() as conn:
            return (await occasions.birthday_chunk(conn, customer.id - 1, 1))[1]

    assert await chunk() == occasions.BirthdayRun(given=1, vouchers=1, coupons_missing=1)
    gift = await BirthdayGift.get(customer_id=customer.id, year=2032)
    assert gift.voucher_id is not None and gift.coupon_id is None and gift.coupon_outcome == "template_off"
    clock.set_now(datetime(2032, 7, 2, 1, 20, tzinfo=SH))
    assert await chunk() == occasions.BirthdayRun(coupons_missing=1)  # still off: still missing, no 2nd voucher

    await CouponTemplate.filter(id=template.id).update(is_active=True)  # staff switch it back on
    clock.set_now(datetime(2032, 7, 3, 1, 20, tzinfo=SH))
    assert await chunk() == occasions.BirthdayRun(coupons=1)
    clock.set_now(datetime(2032, 7, 4, 1, 20, tzinfo=SH))
    assert await chunk() == occasions.BirthdayRun()  # the gift is whole: nothing more
    coupons = await Coupon.filter(customer_id=customer.id, source="birthday")
    assert [(c.source_ref, c.template_id) for c in coupons] == [("2032", template.id)]
    vouchers = await Voucher.filter(customer_id=customer.id, source_type=BIRTHDAY_VOUCHER_SOURCE)
    assert [v.id for v in vouchers] == [gift.voucher_id]
    gift = await BirthdayGift.get(customer_id=customer.id, year=2032)
    assert (gift.voucher_id, gift.coupon_id, gift.coupon_outcome) == (vouchers[0].id, coupons[0].id, "issued")


async def _racing_birthday_chunks(first_id: int, n: int) -> list[occasions.BirthdayRun]:
    """Two runs of the birthday chunk at once, each in its own transaction on its own connection, with no
    deadlock retry around them (the job's `run_job_transaction` would hide a deadlock as a wasted retry)."""

    async def one() -> occasions.BirthdayRun:
        async with transaction() as conn:
            return (await occasions.birthday_chunk(conn, first_id - 1, n))[1]

    return list(await asyncio.gather(one(), one()))


async def test_two_birthday_runs_at_once_give_each_gift_and_each_late_coupon_once_without_a_deadlock(client):
    """The birthday job also runs at every worker's start-up, so two runs of a chunk can race. Both the first gift
    and the late coupon (voucher given, coupon missing) go to each customer once, and neither run deadlocks:
    an INSERT IGNORE of the gift row followed by a locking read had both runs hold the row's shared
    duplicate-key lock and then wait for each other's to lock it exclusively."""
    template = await make_template("cash_off", value_fen=2000, threshold_fen=0, per_customer_limit=5)
    campaign = staff_headers(await make_staff("campaign"))
    assert (await client.put("/admin/crm/coupon-rules/birthday", headers=campaign,
                             json={"coupon_template_id": template.id, "with_voucher": True})).status_code == 200
    n = 6
    for attempt in range(3):
        year = 2040 + attempt
        customers = [await make_customer(birth_date=date(1990, 8, 1 + i)) for i in range(n)]
        first_id, ids = customers[0].id, [c.id for c in customers]
        assert ids == list(range(first_id, first_id + n))  # the chunk takes exactly these (after first_id - 1)
        await CouponTemplate.filter(id=template.id).update(is_active=False)
        clock.set_now(datetime(year, 8, 1, 1, 20, tzinfo=SH))
        runs = await _racing_birthday_chunks(first_id, n)  # first gifts, racing on fresh rows
        assert sum(r.given for r in runs) == n and sum(r.vouchers for r in runs) == n

        await CouponTemplate.filter(id=template.id).update(is_active=True)  # staff switch it back on
        clock.set_now(datetime(year, 8, 2, 1, 20, tzinfo=SH))
        runs = await _racing_birthday_chunks(first_id, n)  # late coupons, racing on existing rows
        assert sum(r.coupons for r in runs) == n

        vouchers = Counter(await Voucher.filter(customer_id__in=ids, source_type=BIRTHDAY_VOUCHER_SOURCE)
                           .values_list("customer_id", flat=True))
        coupons = Counter(await Coupon.filter(customer_id__in=ids, source="birthday").values_list(
            "customer_id", flat=True))
        assert vouchers == coupons == Counter(ids)
        gifts = await BirthdayGift.filter(customer_id__in=ids, year=year)
        assert sorted(g.customer_id for g in gifts) == ids
        assert all(g.coupon_outcome == "issued" and g.coupon_id for g in gifts)


async def test_the_results_of_a_coupon_only_outreach_count_its_coupons_and_no_voucher_or_message(client):
    """The results' counts hold a figure for each thing the outreach gives or sends: a coupon-only outreach's
    coupons issued, and no "vouchers issued 0" or "messages sent 0" (the console showed 已发券 0 for it, which
    staff read as no coupon given)."""
    clock.set_now(DAYTIME)
    template = await make_template("cash_off", value_fen=1000, threshold_fen=0)
    members, segment = await tagged_members(3)
    outreach = await draft(segment.id, coupon_template_id=template.id)
    assert await tasks.run_outreach(CTX, outreach.id) == "done"
    results = await client.get(f"/admin/crm/outreach/{outreach.id}",
                               headers=staff_headers(await make_staff("campaign")))
    assert results.json()["counts"] == {"members": 3, "holdout": 0, "coupons_issued": 3}


async def test_a_customers_card_says_what_coupon_an_outreach_gave(client):
    """The card's outreach rows carry `coupon_outcome` beside the voucher's and the message's: a coupon-only
    outreach's recipient read `voucher` empty and nothing about the coupon they were given."""
    clock.set_now(DAYTIME)
    template = await make_template("cash_off", value_fen=1000, threshold_fen=0)
    [member], segment = await tagged_members(1)
    outreach = await draft(segment.id, coupon_template_id=template.id)
    assert await tasks.run_outreach(CTX, outreach.id) == "done"
    staff = await make_staff("campaign")
    card = await client.get(f"/admin/customers/{member.id}/card", headers=staff_headers(staff))
    assert card.status_code == 200, card.text
    [row] = card.json()["outreach_received"]
    assert (row["outreach_id"], row["coupon_outcome"], row["voucher"]) == (outreach.id, "issued", "")
