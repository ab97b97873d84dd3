"""An outreach's lift, intention to treat: every member the hash put outside the holdout is a recipient, skipped
or not, and this outreach's coupon used on a paid order is a redemption. Figures computed by hand below."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from crm import outreach as outreach_service
from crm import tasks
from crm.models import CouponRule, CustomerTag, MarketingProfile, TagKind
from crm.outreach import in_holdout, record_acceptances, set_opt_out
from kernel import clock
from kernel.db import transaction
from kernel.wechat.miniprogram import SandboxMiniProgram
from orders.product_models import Coupon
from tests.booking.factories import make_slot
from tests.crm.factories import make_segment, make_tag, only
from tests.factories import customer_headers, make_customer, make_staff, staff_headers
from tests.orders.factories import run_jobs
from tests.orders.shop_factories import give_stored_value, make_product, make_template

SH = ZoneInfo("Asia/Shanghai")
# Daytime today (no quiet hours). Today, not a fixed day: the orders write jobs to the outbox at their clock, and
# arq refuses a job due more than a day ago; the test relays and clears them at its end (`run_jobs`).
T0 = datetime.combine(datetime.now(SH).date(), time(10), tzinfo=SH)
TEMPLATE = "tmpl-lift"


@pytest.fixture(autouse=True)
def real_time_after():
    yield
    clock.set_now(None)


async def _members(outreach_id: int, tag_id: int, *, treated: int, held: int):
    """Customers the outreach's own hash (50%) puts on each side, tagged into its segment."""
    on_side: dict[bool, list] = {False: [], True: []}
    while len(on_side[False]) < treated or len(on_side[True]) < held:
        customer = await make_customer()
        side = in_holdout(outreach_id, customer.id, 5000)
        if len(on_side[side]) < (held if side else treated):
            on_side[side].append(customer)
            await CustomerTag.create(customer_id=customer.id, tag_id=tag_id, source=TagKind.manual,
                                     created_at=clock.now())
    return on_side[False], on_side[True]


async def _buy(client, customer, product, coupon_id: int | None = None) -> None:
    await give_stored_value(customer.id, product.price_fen)
    body = {"items": [{"product_id": product.id}], "use_stored_value": True}
    if coupon_id is not None:
        body["coupon_id"] = coupon_id
    made = await client.post("/app/orders", json=body, headers=customer_headers(customer))
    assert made.status_code == 201 and made.json()["status"] == "paid", made.text


async def _book(client, customer) -> None:
    slot = await make_slot(starts_in=timedelta(days=2))
    made = await client.post("/app/bookings", json={"slot_id": slot.id}, headers=customer_headers(customer))
    assert made.status_code == 201, made.text


async def _coupon_outreach(name: str, *, holdout_bp: int, **extra):
    """At T0, with no coupon rules: an outreach of a ¥10 cash-off coupon to a tag's segment, watched for 7 days.
    Returns it and the tag whose members `_members` makes."""
    clock.set_now(T0)
    await CouponRule.all().delete()
    marker = await make_tag()
    segment = await make_segment({"groups": [only(marker.id)]})
    template = await make_template("cash_off", value_fen=1000, threshold_fen=0)
    async with transaction() as conn:
        outreach = await outreach_service.create_outreach(conn, dict(
            name=name, segment_id=segment.id, holdout_bp=holdout_bp, coupon_template_id=template.id, lift_days=7,
            **extra), staff_id=1)
    return outreach, marker


async def test_lift_keeps_skipped_recipients_and_counts_coupons_used(client, redis):
    outreach, marker = await _coupon_outreach("lift", holdout_bp=5000, template_id=TEMPLATE,
                                              message_data={"thing1": "¥10 off"})
    (t1, t2, t3, t4, t5, t6), (h1, h2, h3, h4) = await _members(outreach.id, marker.id, treated=6, held=4)
    async with transaction() as conn:
        for consenting in (t1, t4, t5):
            await record_acceptances(conn, consenting.id, [TEMPLATE])
        await set_opt_out(conn, t2.id, True)
    await MarketingProfile.bulk_create([MarketingProfile(customer_id=t4.id)], ignore_conflicts=True)
    await MarketingProfile.filter(customer_id=t4.id).update(last_marketing_at=T0 - timedelta(days=1))
    async with transaction() as conn:
        await outreach_service.schedule(conn, outreach.id, at=None)
    assert await tasks.run_outreach({"miniprogram": SandboxMiniProgram()}, outreach.id) == "done"

    # What the run did: t1 and t5 got the coupon and the message; t2 opted out (nothing); t3 and t6 the coupon
    # but no message (no consent); t4 the coupon but no message (over the weekly cap).
    clock.set_now(T0 + timedelta(hours=1))
    product = await make_product("product", price_fen=3000)
    coupons = {c.customer_id: c.id for c in await Coupon.filter(source="outreach", source_ref=str(outreach.id))}
    assert set(coupons) == {t1.id, t3.id, t4.id, t5.id, t6.id}
    await _buy(client, t1, product, coupons[t1.id])  # redeemed, paid (message sent)
    await _buy(client, t3, product, coupons[t3.id])  # redeemed, paid (message skipped: no consent)
    await _buy(client, t4, product)  # paid without the coupon (message skipped: over cap)
    await _book(client, t2)  # booked (skipped: opted out)
    await _buy(client, h1, product)  # holdout: paid
    await _book(client, h2)  # holdout: booked

    clock.set_now(T0 + timedelta(hours=2))
    results = (await client.get(f"/admin/crm/outreach/{outreach.id}",
                                headers=staff_headers(await make_staff("campaign")))).json()
    counts = results["counts"]
    assert (counts["members"], counts["holdout"], counts["messages_sent"]) == (10, 4, 2)
    assert (counts["skipped_opted_out"], counts["skipped_no_consent"], counts["skipped_over_cap"]) == (1, 2, 1)
    # Recipients, all six: booked 1 (t2), redeemed 2 (t1, t3), paid 3 (t1, t3, t4).
    assert results["recipients"] == {"customers": 6, "booked": 1, "redeemed": 2, "paid": 3,
                                     "booked_rate_bp": 1666, "redeemed_rate_bp": 3333, "paid_rate_bp": 5000}
    # Holdout, four: booked 1 (h2), redeemed 0 (it got nothing to redeem), paid 1 (h1).
    assert results["holdout"] == {"customers": 4, "booked": 1, "redeemed": 0, "paid": 1,
                                  "booked_rate_bp": 2500, "redeemed_rate_bp": 0, "paid_rate_bp": 2500}
    assert results["lift_bp"] == {"booked": 1666 - 2500, "redeemed": 3333, "paid": 5000 - 2500}
    assert {h3.id, h4.id}.isdisjoint(coupons)
    await run_jobs(redis)  # the orders' outbox jobs: delivered now, none left for a later test's worker


async def test_a_booking_and_a_payment_at_the_reading_instant_count(client, redis):
    """Results read at the very instant a recipient booked and paid with the outreach's coupon count all three:
    the window runs up to and including the reading instant (it excluded them: `< now`)."""
    outreach, marker = await _coupon_outreach("boundary", holdout_bp=0)
    (recipient,), _ = await _members(outreach.id, marker.id, treated=1, held=0)
    async with transaction() as conn:
        await outreach_service.schedule(conn, outreach.id, at=None)
    assert await tasks.run_outreach({"miniprogram": SandboxMiniProgram()}, outreach.id) == "done"

    instant = T0 + timedelta(hours=3)
    clock.set_now(instant)  # the test clock stands still: everything below happens at this instant
    product = await make_product("product", price_fen=3000)
    coupon = await Coupon.get(source="outreach", source_ref=str(outreach.id), customer_id=recipient.id)
    await _buy(client, recipient, product, coupon.id)
    await _book(client, recipient)
    results = (await client.get(f"/admin/crm/outreach/{outreach.id}",
                                headers=staff_headers(await make_staff("campaign")))).json()
    assert results["recipients"] == {"customers": 1, "booked": 1, "redeemed": 1, "paid": 1,
                                     "booked_rate_bp": 10000, "redeemed_rate_bp": 10000, "paid_rate_bp": 10000}
    await run_jobs(redis)
