"""The CRM's HTTP surface end to end: segment preview and save (a deleted tag refused), recompute and the
event feed, an outreach scheduled through the outbox and its results with lift, consultation follow-ups,
and the customer's own consent and opt-out routes."""

from __future__ import annotations

import asyncio
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from booking.models import Booking, BookingStatus, FollowUpTask
from crm import tasks
from crm.models import CustomerTag, MessageConsent, TagKind
from kernel import clock
from tests.booking.factories import make_slot
from tests.crm.factories import make_consumption, make_tag, only
from tests.factories import customer_headers, make_customer, make_staff, run_worker, staff_headers
from tests.orders.factories import run_jobs
from tests.orders.shop_factories import give_stored_value, make_product

SH = ZoneInfo("Asia/Shanghai")


async def _tagged(tag_id: int, n: int):
    people = [await make_customer() for _ in range(n)]
    for p in people:
        await CustomerTag.create(customer_id=p.id, tag_id=tag_id, source=TagKind.manual, created_at=clock.now())
    return people


async def test_segment_preview_save_recompute_and_events(client):
    headers = staff_headers(await make_staff("campaign"))
    marker = await make_tag()
    people = await _tagged(marker.id, 5)
    rules = {"groups": [only(marker.id)]}
    preview = await client.post("/admin/crm/segments/preview", json=rules, headers=headers)
    assert preview.status_code == 200 and preview.json()["count"] == 5
    gone = await make_tag(deleted_at=clock.now())
    refused = await client.post("/admin/crm/segments", json={
        "name": "x", "rules": {"groups": [[{"field": "tag", "op": "in", "value": [gone.id]}]]}}, headers=headers)
    assert refused.status_code == 422 and refused.json()["code"] == "segment_rule_deleted_tag"
    bad = await client.post("/admin/crm/segments/preview", json={"groups": [[{"field": "tag", "op": "in",
                                                                             "value": "x"}]]}, headers=headers)
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "rules.groups[0][0].value"
    created = await client.post("/admin/crm/segments", json={"name": "tagged", "rules": rules}, headers=headers)
    assert created.status_code == 201, created.text
    segment_id = created.json()["id"]
    first = await client.post(f"/admin/crm/segments/{segment_id}/recompute", headers=headers)
    assert first.json() == {"entered": 5, "left": 0, "member_count": 5}
    await CustomerTag.filter(customer_id=people[0].id, tag_id=marker.id).delete()
    second = await client.post(f"/admin/crm/segments/{segment_id}/recompute", headers=headers)
    assert second.json() == {"entered": 0, "left": 1, "member_count": 4}
    feed = (await client.get(f"/admin/crm/segments/{segment_id}/events", headers=headers)).json()
    assert [(e["customer_id"], e["kind"]) for e in feed["items"]][-1] == (people[0].id, "left")
    more = (await client.get(f"/admin/crm/segments/{segment_id}/events",
                             params={"after_id": feed["next_after_id"]}, headers=headers)).json()
    assert more["items"] == []


async def test_outreach_through_routes_and_worker_with_lift(client, redis):
    # Daytime today (the job goes through the outbox and arq, which keep real time), outside quiet hours.
    clock.set_now(datetime.combine(datetime.now(SH).date(), time(10), tzinfo=SH))
    headers = staff_headers(await make_staff("campaign"))
    marker = await make_tag()
    people = await _tagged(marker.id, 20)
    segment = (await client.post("/admin/crm/segments", json={"name": "o", "rules": {"groups": [only(marker.id)]}},
                                 headers=headers)).json()
    draft = await client.post("/admin/crm/outreach", json={
        "name": "summer", "segment_id": segment["id"], "voucher_title": "Summer ¥50", "holdout_bp": 5000,
        "lift_days": 7}, headers=headers)
    assert draft.status_code == 201, draft.text
    outreach_id = draft.json()["id"]
    scheduled = await client.post(f"/admin/crm/outreach/{outreach_id}/schedule", json={}, headers=headers)
    assert scheduled.json()["status"] == "scheduled"
    again = await client.post(f"/admin/crm/outreach/{outreach_id}/schedule", json={}, headers=headers)
    assert again.status_code == 409 and again.json()["code"] == "outreach_state"
    worker = await run_worker(redis)
    assert worker.jobs_failed == 0
    # Every recipient and every holdout customer pays a shop order (through the route) within the window: both
    # sides are all paid, so the lift on paid orders is 0. A front-desk consumption is not a paid order and
    # would leave both sides at 0 paid, proving nothing.
    clock.set_now(clock.now() + timedelta(hours=1))
    product = await make_product("product", price_fen=3000)
    for p in people:
        await give_stored_value(p.id, product.price_fen)
        paid = await client.post("/app/orders", json={"items": [{"product_id": product.id}],
                                                      "use_stored_value": True}, headers=customer_headers(p))
        assert paid.status_code == 201 and paid.json()["status"] == "paid", paid.text
    clock.set_now(clock.now() + timedelta(hours=1))  # read later: the window counts up to the reading instant
    results = (await client.get(f"/admin/crm/outreach/{outreach_id}", headers=headers)).json()
    assert results["outreach"]["status"] == "done"
    counts = results["counts"]
    assert counts["members"] == 20 and counts["vouchers_issued"] == 20 - counts["holdout"]
    treated, held = results["recipients"], results["holdout"]
    assert treated["customers"] + held["customers"] == 20 and treated["customers"] and held["customers"]
    assert (treated["paid"], held["paid"]) == (treated["customers"], held["customers"])
    assert treated["paid_rate_bp"] == held["paid_rate_bp"] == 10_000
    assert results["lift_bp"]["paid"] == 0
    await run_jobs(redis)  # the orders' outbox jobs: delivered now, none left for a later test's worker
    clock.set_now(None)


async def test_consultations_not_converted_get_one_follow_up_task(redis):
    slot = await make_slot(starts_in=timedelta(days=-10))
    visited = clock.now() - timedelta(days=8)
    converted, lost = await make_customer(), await make_customer()
    bookings = {}
    for customer in (converted, lost):
        bookings[customer.id] = await Booking.create(
            customer_id=customer.id, slot_id=slot.id, branch_id=slot.branch_id, department_id=slot.department_id,
            starts_at=slot.starts_at, ends_at=slot.ends_at, local_date=slot.local_date,
            status=BookingStatus.completed, completed_at=visited, created_at=visited,
        )
    await make_consumption(converted.id, 500_000, visited + timedelta(days=2))
    await tasks.consultation_follow_ups({})
    await tasks.consultation_follow_ups({})
    tasks_lost = await FollowUpTask.filter(booking_id=bookings[lost.id].id, kind="consultation")
    assert len(tasks_lost) == 1 and tasks_lost[0].note.startswith("咨询回访")
    assert not await FollowUpTask.filter(booking_id=bookings[converted.id].id, kind="consultation").exists()


async def test_customer_consent_and_opt_out(client):
    customer = await make_customer()
    headers = customer_headers(customer)
    state = (await client.get("/app/crm/marketing", headers=headers)).json()
    assert state == {"opt_out": False, "subscriptions": {}}
    accepted = await client.post("/app/crm/subscriptions", json={"accepted": ["tmpl-a", "tmpl-a", "tmpl-b"]},
                                 headers=headers)
    assert accepted.json()["subscriptions"] == {"tmpl-a": 1, "tmpl-b": 1}
    await client.post("/app/crm/subscriptions", json={"accepted": ["tmpl-a"]}, headers=headers)
    out = await client.put("/app/crm/marketing", json={"opt_out": True}, headers=headers)
    assert out.json() == {"opt_out": True, "subscriptions": {"tmpl-a": 2, "tmpl-b": 1}}
    too_long = await client.post("/app/crm/subscriptions", json={"accepted": ["x" * 65]}, headers=headers)
    assert too_long.status_code == 400


async def test_a_consent_report_naming_a_template_the_clinic_does_not_send_is_refused_and_changes_nothing(client):
    """Only the clinic's templates (CRM_OUTREACH_TEMPLATE_IDS) bank credits: a made-up id is a 422 naming its
    place in the report, and the known ids beside it are not taken either."""
    customer = await make_customer()
    headers = customer_headers(customer)
    refused = await client.post("/app/crm/subscriptions", json={"accepted": ["tmpl-a", "made-up-1"]},
                                headers=headers)
    assert refused.status_code == 422, refused.text
    body = refused.json()
    assert body["code"] == "unknown_message_template" and body["detail"]["field"] == "accepted[1]"
    assert not await MessageConsent.filter(customer_id=customer.id).exists()
    # Nor can staff name one for an outreach: no customer could have consented to it.
    staff = staff_headers(await make_staff("campaign"))
    marker = await make_tag()
    segment = (await client.post("/admin/crm/segments", json={"name": "t", "rules": {"groups": [only(marker.id)]}},
                                 headers=staff)).json()
    draft = await client.post("/admin/crm/outreach", json={
        "name": "x", "segment_id": segment["id"], "template_id": "made-up-2"}, headers=staff)
    assert draft.status_code == 422 and draft.json()["code"] == "unknown_message_template"
    assert draft.json()["detail"]["field"] == "template_id"
    known = await client.post("/admin/crm/outreach", json={
        "name": "x", "segment_id": segment["id"], "template_id": "tmpl-a"}, headers=staff)
    assert known.status_code == 201, known.text


async def test_subscription_credits_stop_at_the_cap_however_often_a_grant_is_replayed(client):
    """A client replaying its wx.requestSubscribeMessage report, one after another or all at once, banks at
    most CRM_SUBSCRIPTION_CREDITS_MAX (5) sends per template; each report still answers 200 with the real count."""
    customer = await make_customer()
    headers = customer_headers(customer)
    for _ in range(8):
        replayed = await client.post("/app/crm/subscriptions", json={"accepted": ["tmpl-news"]}, headers=headers)
        assert replayed.status_code == 200
    assert replayed.json()["subscriptions"] == {"tmpl-news": 5}
    # All at once: the reports queue on the customer's row for the template (none fails, none goes past 5).
    answers = await asyncio.gather(*[
        client.post("/app/crm/subscriptions", json={"accepted": ["tmpl-promo", "tmpl-news"]}, headers=headers)
        for _ in range(30)])
    assert {a.status_code for a in answers} == {200}
    assert sorted(a.json()["subscriptions"]["tmpl-promo"] for a in answers)[-1] == 5
    consents = await MessageConsent.filter(customer_id=customer.id).order_by("template_id")
    assert [(c.template_id, c.credits) for c in consents] == [("tmpl-news", 5), ("tmpl-promo", 5)]
    # Another customer's credits are their own.
    other = await make_customer()
    mine = await client.post("/app/crm/subscriptions", json={"accepted": ["tmpl-promo"]},
                             headers=customer_headers(other))
    assert mine.json()["subscriptions"] == {"tmpl-promo": 1}
