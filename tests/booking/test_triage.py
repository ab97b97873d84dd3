"""Pre-triage: department suggestion, contraindication flags, validation naming the field, and the
answers kept as health data (sealed at rest, never logged, only the owner and staff see them)."""

from __future__ import annotations

import logging
import secrets

import msgspec
import pytest

from api.logging import configure_logging
from booking.models import Booking, TriageSubmission
from kernel.settings import get_settings
from tests.booking.factories import make_department, make_slot
from tests.factories import customer_headers, make_customer


@pytest.fixture
async def departments():
    tag = secrets.token_hex(3)
    skin = await make_department(concerns=[f"acne-{tag}", f"pores-{tag}", f"marks-{tag}"])
    laser = await make_department(concerns=[f"pigment-{tag}", f"sagging-{tag}", f"marks-{tag}"])
    return tag, skin, laser


NO = {"pregnant": False, "anticoagulants": False, "recent_procedure": False}


async def test_suggests_the_department_that_treats_most_concerns(client, departments):
    tag, skin, laser = departments
    headers = customer_headers(await make_customer())
    r = await client.post("/app/triage", headers=headers, json={
        "department_id": skin.id, "concerns": [f"pigment-{tag}", f"sagging-{tag}", f"marks-{tag}"], "answers": NO})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["department_id"] == skin.id and body["suggested_department_id"] == laser.id
    assert body["needs_doctor_review"] is False and body["flagged"] == []
    # A tie goes to the department the customer chose.
    tie = await client.post("/app/triage", headers=headers, json={
        "department_id": laser.id, "concerns": [f"marks-{tag}"], "answers": NO})
    assert tie.json()["suggested_department_id"] == laser.id
    # Without a chosen department, the suggested one's questions are the ones answered.
    free = await client.post("/app/triage", headers=headers, json={"concerns": [f"acne-{tag}"], "answers": NO})
    assert free.status_code == 201 and free.json()["department_id"] == skin.id


async def test_any_contraindication_flags_for_doctor_review(client, departments):
    _, skin, _ = departments
    headers = customer_headers(await make_customer())
    r = await client.post("/app/triage", headers=headers, json={
        "department_id": skin.id, "answers": {**NO, "pregnant": True, "recent_procedure": True}})
    assert r.status_code == 201, r.text
    # recent_procedure is asked but is not a contraindication.
    assert r.json()["needs_doctor_review"] is True and r.json()["flagged"] == ["pregnant"]


@pytest.mark.parametrize("payload, field", [
    ({"answers": {"pregnant": False, "recent_procedure": False}}, "answers.anticoagulants"),
    ({"answers": {**NO, "smoker": True}}, "answers.smoker"),
    ({"answers": {**NO, "pregnant": "maybe"}}, "answers.pregnant"),
    ({"answers": NO, "concerns": ["no-such-concern"]}, "concerns[0]"),
    ({"answers": NO, "department_id": 999999999}, "department_id"),
])
async def test_invalid_answers_name_the_field(client, departments, payload, field):
    _, skin, _ = departments
    customer = await make_customer()
    r = await client.post("/app/triage", headers=customer_headers(customer),
                          json={"department_id": skin.id, **payload})
    assert r.status_code in (404, 422), r.text
    assert r.json()["detail"]["field"] == field
    assert not await TriageSubmission.filter(customer_id=customer.id).exists()


async def test_answers_are_sealed_never_logged_and_private(client, departments, caplog, capsys):
    _, skin, _ = departments
    owner, other = await make_customer(), await make_customer()
    secret = "on warfarin since " + secrets.token_hex(6)
    settings = get_settings().app
    # Everything at DEBUG, std logging and structlog (loggers already cached keep their level).
    configure_logging(msgspec.structs.replace(settings, log_level="DEBUG"))
    caplog.set_level(logging.DEBUG)
    try:
        r = await client.post("/app/triage", headers=customer_headers(owner), json={
            "department_id": skin.id, "answers": {**NO, "anticoagulants": True, "notes": secret}})
        assert r.status_code == 201, r.text
        mine = await client.get(f"/app/triage/{r.json()['id']}", headers=customer_headers(owner))
    finally:
        configure_logging(settings)
    captured = capsys.readouterr()
    assert secret not in caplog.text + captured.out + captured.err
    assert mine.status_code == 200
    answers = {a["key"]: a["value"] for a in mine.json()["answers"]}
    assert answers["notes"] == secret and answers["anticoagulants"] is True
    row = await TriageSubmission.get(id=r.json()["id"])
    assert secret not in row.answers_sealed and "warfarin" not in row.answers_sealed
    theirs = await client.get(f"/app/triage/{r.json()['id']}", headers=customer_headers(other))
    assert theirs.status_code == 404


async def test_booking_carries_the_triage_once(client, departments):
    _, skin, _ = departments
    owner, other = await make_customer(), await make_customer()
    triage = (await client.post("/app/triage", headers=customer_headers(owner), json={
        "department_id": skin.id, "answers": {**NO, "pregnant": True}})).json()
    first, second = await make_slot(department=skin), await make_slot(department=skin)
    stolen = await client.post("/app/bookings", headers=customer_headers(other),
                               json={"slot_id": first.id, "triage_id": triage["id"]})
    assert stolen.status_code == 404 and stolen.json()["code"] == "triage_not_found"
    booked = await client.post("/app/bookings", headers=customer_headers(owner),
                               json={"slot_id": first.id, "triage_id": triage["id"]})
    assert booked.status_code == 201 and booked.json()["needs_doctor_review"] is True
    again = await client.post("/app/bookings", headers=customer_headers(owner),
                              json={"slot_id": second.id, "triage_id": triage["id"]})
    assert again.status_code == 409 and again.json()["code"] == "triage_already_used"
    assert await Booking.filter(triage_id=triage["id"]).count() == 1


async def test_export_and_erasure_of_health_answers(client, redis, departments):
    from tests.factories import run_worker
    from tests.booking.factories import slot_seats

    _, skin, _ = departments
    customer = await make_customer()
    headers = customer_headers(customer)
    triage = (await client.post("/app/triage", headers=headers, json={
        "department_id": skin.id, "answers": {**NO, "notes": "allergic to lidocaine"}})).json()
    slot = await make_slot(department=skin)
    booking = (await client.post("/app/bookings", headers=headers, json={
        "slot_id": slot.id, "triage_id": triage["id"], "note": "call my mobile"})).json()
    exported = (await client.get("/app/me/data-export", headers=headers)).json()["booking"]
    assert exported["triage"][0]["answers"]["notes"] == "allergic to lidocaine"
    assert exported["bookings"][0]["note"] == "call my mobile"

    assert (await client.post("/app/me/erasure", headers=headers)).status_code == 202
    await run_worker(redis)
    row = await TriageSubmission.get(id=triage["id"])
    from booking.triage import read_triage
    from kernel.db import transaction

    async with transaction() as conn:
        content = await read_triage(conn, row)
    assert content.answers == {} and content.concerns == []
    kept = await Booking.get(id=booking["id"])
    assert kept.status == "cancelled" and kept.note == ""
    assert await slot_seats(slot.id) == (0, 0)
