"""Booking through HTTP: staff set up and publish a schedule, customers triage and book, the front
desk works the queue (flagged first), follow-ups and the survey follow the visit."""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest

from booking.models import Booking, Branch
from kernel import clock
from kernel.identity.models import AuditLogEntry
from tests.booking.factories import make_department, make_slot
from tests.factories import customer_headers, make_customer, make_staff, run_worker, staff_headers

QUESTIONS = [
    {"key": "concerns", "kind": "concerns", "label": "What bothers you?", "options": ["wrinkles", "volume"]},
    {"key": "pregnant", "kind": "yes_no", "label": "Pregnant?", "contraindication": True},
    {"key": "keloid", "kind": "yes_no", "label": "Keloid history?", "contraindication": True},
    {"key": "notes", "kind": "text", "label": "Anything else?", "required": False},
]


async def test_staff_set_up_publish_and_customers_see_slots(client):
    admin, desk = await make_staff("admin"), await make_staff("front_desk")
    tag = secrets.token_hex(3)
    a, d = staff_headers(admin), staff_headers(desk)
    branch = (await client.post("/admin/booking/branches", headers=a, json={"code": f"b-{tag}", "name": "Jing'an"})).json()
    dup = await client.post("/admin/booking/branches", headers=a, json={"code": f"b-{tag}", "name": "again"})
    assert dup.status_code == 409 and dup.json()["code"] == "code_taken"
    bad_zone = await client.post("/admin/booking/branches", headers=a, json={"code": f"z-{tag}", "name": "x",
                                                                              "timezone": "Mars/Olympus"})
    assert bad_zone.status_code == 422 and bad_zone.json()["detail"]["field"] == "timezone"
    dept = (await client.post("/admin/booking/departments", headers=a, json={"code": f"inj-{tag}", "name": "Injectables"})).json()
    q = await client.put(f"/admin/booking/departments/{dept['id']}/questionnaire", headers=a,
                         json={"title": "Injectables pre-triage", "questions": QUESTIONS})
    assert q.status_code == 200 and q.json()["version"] == 1, q.text
    svc = await client.post("/admin/booking/services", headers=a, json={
        "department_id": dept["id"], "name": "Consultation", "duration_minutes": 30, "price_fen": 0})
    assert svc.status_code == 201, svc.text
    doc = await client.post("/admin/booking/practitioners", headers=a, json={
        "branch_id": branch["id"], "department_id": dept["id"], "name": "Dr Li"})
    assert doc.status_code == 201
    # Front desk may not change the clinic's set-up.
    assert (await client.post("/admin/booking/departments", headers=d, json={"code": "x", "name": "x"})).status_code == 403

    schedule = await client.post("/admin/schedules", headers=d, json={
        "branch_id": branch["id"], "department_id": dept["id"], "practitioner_id": doc.json()["id"],
        "slot_minutes": 30, "capacity": 2, "valid_from": clock.local_today().isoformat(),
        "hours": [{"weekday": w, "start": "09:00", "end": "11:00"} for w in range(7)]})
    assert schedule.status_code == 201, schedule.text
    sid = schedule.json()["id"]
    bad = await client.post("/admin/schedules", headers=d, json={
        "branch_id": branch["id"], "department_id": dept["id"], "slot_minutes": 30, "capacity": 2,
        "valid_from": clock.local_today().isoformat(), "hours": [{"weekday": 1, "start": "25:00", "end": "11:00"}]})
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "hours[0].start"
    tomorrow = clock.local_today() + timedelta(days=1)
    closed = await client.post(f"/admin/schedules/{sid}/exceptions", headers=d,
                               json={"date": (tomorrow + timedelta(days=1)).isoformat(), "kind": "closed"})
    assert closed.status_code == 201, closed.text
    published = await client.post(f"/admin/schedules/{sid}/publish", headers=d,
                                  json={"from_date": tomorrow.isoformat(), "days": 3})
    assert published.status_code == 200 and published.json()["created"] == 8, published.text
    again = await client.post(f"/admin/schedules/{sid}/publish", headers=d,
                              json={"from_date": tomorrow.isoformat(), "days": 3})
    assert again.json()["created"] == 0
    listed = await client.get("/admin/schedules", headers=d, params={"branch_id": branch["id"]})
    assert listed.json()["items"][0]["hours"][0] == {"weekday": 0, "start": "09:00", "end": "11:00"}

    c = customer_headers(await make_customer())
    departments = (await client.get("/app/booking/departments", headers=c)).json()["items"]
    mine = next(x for x in departments if x["id"] == dept["id"])
    assert mine["concerns"] == ["wrinkles", "volume"] and mine["services"][0]["name"] == "Consultation"
    slots = await client.get("/app/booking/slots", headers=c, params={
        "branch_id": branch["id"], "department_id": dept["id"], "date": tomorrow.isoformat()})
    assert slots.status_code == 200
    items = slots.json()["items"]
    assert [s["local_start"][11:16] for s in items] == ["09:00", "09:30", "10:00", "10:30"]
    assert all(s["remaining"] == 2 for s in items)
    none = await client.get("/app/booking/slots", headers=c, params={
        "branch_id": branch["id"], "department_id": dept["id"], "date": (tomorrow + timedelta(days=1)).isoformat()})
    assert none.json()["items"] == []

    staff_view = await client.get("/admin/slots", headers=d, params={"branch_id": branch["id"], "date": tomorrow.isoformat()})
    first = staff_view.json()["items"][0]
    booked = await client.post("/app/bookings", headers=c, json={"slot_id": first["id"]})
    assert booked.status_code == 201
    shrunk = await client.patch(f"/admin/slots/{first['id']}", headers=d, json={"capacity": 1})
    assert shrunk.status_code == 200 and shrunk.json()["remaining"] == 0 and shrunk.json()["booked"] == 1
    assert (await client.patch(f"/admin/slots/{first['id']}", headers=d, json={"capacity": 1})).status_code == 200
    for _ in range(2):
        r = await client.post("/app/bookings", headers=customer_headers(await make_customer()),
                              json={"slot_id": items[1]["id"]})
        assert r.status_code == 201
    below = await client.patch(f"/admin/slots/{items[1]['id']}", headers=d, json={"capacity": 1})
    assert below.status_code == 409 and below.json()["code"] == "capacity_below_booked"
    closed_slot = await client.patch(f"/admin/slots/{items[2]['id']}", headers=d, json={"status": "closed"})
    assert closed_slot.status_code == 200 and closed_slot.json()["status"] == "closed"
    late = await client.post("/app/bookings", headers=customer_headers(await make_customer()),
                             json={"slot_id": items[2]["id"]})
    assert late.status_code == 409 and late.json()["code"] == "slot_closed"
    audit = await AuditLogEntry.filter(target_type="booking_schedule", target_id=str(sid)).values_list("action", flat=True)
    assert {"booking.schedule_create", "booking.slots_publish", "booking.schedule_exception"} <= set(audit)


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Australia/Sydney"])
async def test_a_branch_in_a_zone_with_daylight_saving_time_is_refused(client, zone):
    """Its schedules would have made every slot an hour off for half the year (no gap/fold handling): refused with
    the clinic zone's rule (kernel.clock.keeps_one_offset), naming the field and why; nothing is written."""
    a = staff_headers(await make_staff("admin"))
    code = f"dst-{secrets.token_hex(3)}"
    refused = await client.post("/admin/booking/branches", headers=a,
                                json={"code": code, "name": "Summer time", "timezone": zone})
    assert refused.status_code == 422, refused.text
    body = refused.json()
    assert body["code"] == "validation_failed" and body["detail"]["field"] == "timezone", body
    assert "daylight saving time" in body["message"] and "one UTC offset all year" in body["message"], body
    assert not await Branch.filter(code=code).exists()


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "Asia/Tokyo", "UTC"])
async def test_a_branch_in_a_zone_of_one_offset_is_created(client, zone):
    a = staff_headers(await make_staff("admin"))
    created = await client.post("/admin/booking/branches", headers=a,
                                json={"code": f"one-{secrets.token_hex(3)}", "name": "One offset", "timezone": zone})
    assert created.status_code == 201 and created.json()["timezone"] == zone, created.text


async def test_a_branch_zone_is_stored_without_the_spaces_around_it(client):
    """As CLINIC_TIMEZONE is read: " Asia/Tokyo " names a zone, and the branch's schedules read the stored name."""
    a = staff_headers(await make_staff("admin"))
    created = await client.post("/admin/booking/branches", headers=a,
                                json={"code": f"sp-{secrets.token_hex(3)}", "name": "Spaces", "timezone": " Asia/Tokyo "})
    assert created.status_code == 201 and created.json()["timezone"] == "Asia/Tokyo", created.text


async def test_front_desk_day_queue_visit_follow_ups_survey_and_history(client, redis):
    department = await make_department(questions=QUESTIONS[1:], concerns=["wrinkles-" + secrets.token_hex(3)])
    # Both visits start in 3 hours (tokens minted now stay valid when the clock moves there).
    early = await make_slot(department=department, starts_in=timedelta(hours=3))
    branch_id = early.branch_id
    late = await make_slot(branch=await Branch.get(id=branch_id), department=department,
                           starts_at=early.starts_at + timedelta(minutes=30))
    flagged_customer, calm_customer, stranger = await make_customer(), await make_customer(), await make_customer()
    fh, ch, sh = customer_headers(flagged_customer), customer_headers(calm_customer), customer_headers(stranger)
    desk = staff_headers(await make_staff("front_desk"))

    triage = await client.post("/app/triage", headers=fh, json={
        "department_id": department.id, "answers": {"pregnant": False, "keloid": True, "notes": "scar on chin"}})
    assert triage.status_code == 201 and triage.json()["needs_doctor_review"] is True
    calm = (await client.post("/app/bookings", headers=ch, json={"slot_id": early.id})).json()
    flagged = (await client.post("/app/bookings", headers=fh, json={
        "slot_id": late.id, "triage_id": triage.json()["id"], "note": "first visit"})).json()

    queue = await client.get("/admin/bookings", headers=desk, params={
        "branch_id": branch_id, "date": early.local_date.isoformat()})
    assert queue.status_code == 200, queue.text
    entries = queue.json()["items"]
    # Flagged first although it starts later; staff see the answers.
    assert [e["booking"]["id"] for e in entries] == [flagged["id"], calm["id"]]
    answers = {a["key"]: a["value"] for a in entries[0]["triage"]["answers"]}
    assert answers == {"pregnant": False, "keloid": True, "notes": "scar on chin"}
    assert entries[0]["triage"]["flagged"] == ["keloid"] and entries[1]["triage"] is None
    # A customer token never reaches the queue.
    assert (await client.get("/admin/bookings", headers=fh)).status_code == 403

    illegal = await client.post(f"/admin/bookings/{flagged['id']}/complete", headers=desk)
    assert illegal.status_code == 409 and illegal.json()["code"] == "illegal_transition"
    early_no_show = await client.post(f"/admin/bookings/{calm['id']}/no-show", headers=desk)
    assert early_no_show.status_code == 409 and early_no_show.json()["code"] == "too_early"

    clock.set_now(late.starts_at + timedelta(minutes=5))
    assert (await client.post(f"/admin/bookings/{flagged['id']}/arrive", headers=desk)).json()["status"] == "arrived"
    twice = await client.post(f"/admin/bookings/{flagged['id']}/arrive", headers=desk)
    assert twice.status_code == 409
    not_yet = await client.post(f"/app/bookings/{flagged['id']}/survey", headers=fh, json={"score": 5})
    assert not_yet.status_code == 409 and not_yet.json()["code"] == "survey_not_open"
    done = await client.post(f"/admin/bookings/{flagged['id']}/complete", headers=desk)
    assert done.status_code == 200 and done.json()["status"] == "completed"
    assert (await client.post(f"/admin/bookings/{calm['id']}/no-show", headers=desk)).json()["status"] == "no_show"
    cancel_after = await client.post(f"/app/bookings/{calm['id']}/cancel", headers=ch)
    assert cancel_after.status_code == 409 and cancel_after.json()["code"] == "illegal_transition"

    await run_worker(redis)
    day_one = (clock.local_today() + timedelta(days=1)).isoformat()
    tasks = await client.get("/admin/follow-ups", headers=desk, params={"due": day_one})
    ours = [t for t in tasks.json()["items"] if t["booking_id"] == flagged["id"]]
    assert len(ours) == 1 and ours[0]["days_after"] == 1
    closed = await client.post(f"/admin/follow-ups/{ours[0]['id']}/done", headers=desk, json={"note": "healing well"})
    assert closed.status_code == 200 and closed.json()["status"] == "done"
    again = await client.post(f"/admin/follow-ups/{ours[0]['id']}/done", headers=desk, json={"note": "x"})
    assert again.status_code == 409 and again.json()["code"] == "follow_up_already_done"
    assert (await client.post("/admin/follow-ups/999999999/done", headers=desk, json={"note": "x"})).status_code == 404

    bad_score = await client.post(f"/app/bookings/{flagged['id']}/survey", headers=fh, json={"score": 6})
    assert bad_score.status_code == 400 and bad_score.json()["detail"]["field"] == "score"
    survey = await client.post(f"/app/bookings/{flagged['id']}/survey", headers=fh, json={"score": 5, "comment": "great"})
    assert survey.status_code == 201, survey.text
    dup = await client.post(f"/app/bookings/{flagged['id']}/survey", headers=fh, json={"score": 1})
    assert dup.status_code == 409 and dup.json()["code"] == "survey_already_answered"
    assert (await client.post(f"/app/bookings/{flagged['id']}/survey", headers=sh,
                              json={"score": 1})).status_code == 404

    history = await client.get(f"/admin/customers/{flagged_customer.id}", headers=desk)
    assert history.status_code == 200, history.text
    body = history.json()
    assert [b["id"] for b in body["bookings"]] == [flagged["id"]]
    assert body["triage"][0]["booking_id"] == flagged["id"] and body["triage"][0]["needs_doctor_review"] is True
    assert body["surveys"][0]["score"] == 5 and len(body["follow_ups"]) == 5
    assert (await client.get("/admin/customers/999999999", headers=desk)).status_code == 404
    viewed = await AuditLogEntry.filter(action="booking.customer_history_viewed", target_id=str(flagged_customer.id))
    assert len(viewed) == 1

    listed = await client.get("/app/bookings", headers=fh)
    assert [b["id"] for b in listed.json()["items"]] == [flagged["id"]]
    assert (await Booking.get(id=flagged["id"])).status == "completed"


async def test_out_of_range_numbers_and_dates_are_refused_with_the_field_named(client):
    admin = staff_headers(await make_staff("admin"))
    slot = await make_slot()
    tag = secrets.token_hex(3)
    # Each of these once reached MySQL (out-of-range column: 503) or date arithmetic (overflow: 500).
    cases = [
        ("/admin/booking/departments", {"code": f"d-{tag}", "name": "n", "sort_order": 2**40}, "sort_order"),
        ("/admin/booking/services", {"department_id": slot.department_id, "name": "n", "duration_minutes": 30,
                                     "price_fen": 2**63}, "price_fen"),
        ("/admin/booking/practitioners", {"branch_id": slot.branch_id, "department_id": slot.department_id,
                                          "name": "n", "staff_id": 2**63}, "staff_id"),
        (f"/admin/schedules/{slot.schedule_id}/publish", {"days": 3, "from_date": "9999-12-30"}, "from_date"),
        (f"/admin/schedules/{slot.schedule_id}/publish", {"days": 3, "from_date": "0001-01-01"}, "from_date"),
    ]
    for path, body, field in cases:
        r = await client.post(path, headers=admin, json=body)
        assert r.status_code in (400, 422) and r.json()["detail"]["field"] == field, (path, r.status_code, r.text)
    # A year ahead is still a date staff may publish from.
    ahead = await client.post(f"/admin/schedules/{slot.schedule_id}/publish", headers=admin,
                              json={"days": 1, "from_date": (clock.local_today() + timedelta(days=300)).isoformat()})
    assert ahead.status_code == 200, ahead.text
