"""Tags: manual tags by staff (audited), rule tags computed nightly, skin tags from analyses and from the
analyser's CSV, which is imported whole or not at all, bad rows listed with their line numbers."""

from __future__ import annotations

import secrets
from datetime import date, timedelta

from crm import tasks
from crm.models import CustomerTag, SkinAnalysis, Tag, TagKind
from kernel import clock
from kernel.db import transaction
from kernel.identity.models import AuditLogEntry
from tests.crm.factories import make_consumption, make_tag
from tests.factories import make_customer, make_staff, staff_headers


async def _skin_tags(n: int) -> list[Tag]:
    return [await make_tag(TagKind.skin, code=f"skin:test:{secrets.token_hex(4)}") for _ in range(n)]


async def _tag_ids(customer_id: int, source: TagKind) -> set[int]:
    return set(await CustomerTag.filter(customer_id=customer_id, source=source).values_list("tag_id", flat=True))


async def test_csv_import_is_all_or_nothing_with_line_numbers(client):
    a, b, c = await _skin_tags(3)
    first, second = await make_customer(), await make_customer()
    headers = {**staff_headers(await make_staff("front_desk")), "content-type": "text/csv"}
    yesterday = (clock.local_today() - timedelta(days=1)).isoformat()
    bad = "\n".join([
        "customer,visit_date,tags",
        f"{first.referral_code},{yesterday},{a.code};{b.code}",  # line 2: fine
        f"NOSUCHCODE,{yesterday},{a.code}",  # line 3: unknown customer
        f"{second.id},2026-13-01,{a.code}",  # line 4: not a date
        f"{second.id},{yesterday},skin:nope",  # line 5: unknown tag
        f"{first.referral_code},{yesterday},{c.code}",  # line 6: same customer and visit as line 2
    ])
    refused = await client.post("/admin/crm/skin-analyses/import", content=bad.encode(), headers=headers)
    assert refused.status_code == 422, refused.text
    body = refused.json()
    assert body["code"] == "skin_import_rejected" and body["detail"]["field"] == "file"
    assert [(e["line"], e["field"]) for e in body["detail"]["errors"]] == [
        (3, "customer"), (4, "visit_date"), (5, "tags"), (6, "row")]
    # Nothing of the file was applied, not even its good line 2.
    assert not await SkinAnalysis.filter(customer_id__in=[first.id, second.id]).exists()
    assert await _tag_ids(first.id, TagKind.skin) == set()

    good = "\n".join([
        "customer,visit_date,tags",
        f"{first.referral_code},{yesterday},{a.code};{b.code}",
        f"{second.id},{yesterday},{c.code}",
    ])
    imported = await client.post("/admin/crm/skin-analyses/import", content=good.encode(), headers=headers)
    assert imported.status_code == 200, imported.text
    assert imported.json() == {"rows_imported": 2}
    assert await _tag_ids(first.id, TagKind.skin) == {a.id, b.id}
    # A later visit replaces the skin tags (the latest analysis decides); importing the same file again changes nothing.
    later = f"customer,visit_date,tags\n{first.referral_code},{clock.local_today().isoformat()},{c.code}\n"
    assert (await client.post("/admin/crm/skin-analyses/import", content=later.encode(), headers=headers)).status_code == 200
    assert (await client.post("/admin/crm/skin-analyses/import", content=good.encode(), headers=headers)).status_code == 200
    assert await _tag_ids(first.id, TagKind.skin) == {c.id}
    assert await SkinAnalysis.filter(customer_id=first.id).count() == 2


async def test_csv_that_python_cannot_read_as_ids_or_fields_is_a_422_not_a_500(client):
    [a] = await _skin_tags(1)
    headers = {**staff_headers(await make_staff("front_desk")), "content-type": "text/csv"}
    day = (clock.local_today() - timedelta(days=1)).isoformat()
    # "²" and "①" are digits to str.isdigit() but not to int(); a 200,000-character field passes the body
    # limit but not the csv module's field limit.
    superscript = f"customer,visit_date,tags\n\u00b2,{day},{a.code}\n\u2460\u2461,{day},{a.code}\n"
    refused = await client.post("/admin/crm/skin-analyses/import", content=superscript.encode(), headers=headers)
    assert refused.status_code == 422, refused.text
    assert [(e["line"], e["field"]) for e in refused.json()["detail"]["errors"]] == [(2, "customer"), (3, "customer")]
    huge = f"customer,visit_date,tags\nX,{day},\"{'a' * 200_000}\"\n"
    refused = await client.post("/admin/crm/skin-analyses/import", content=huge.encode(), headers=headers)
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"]["field"] == "file"


async def test_manual_tags_are_audited_and_rule_tags_cannot_be_put_by_hand(client):
    staff = await make_staff("campaign")
    headers = staff_headers(staff)
    created = await client.post("/admin/crm/tags", json={"code": f"vip:{secrets.token_hex(3)}", "name": "VIP",
                                                         "category": "vip"}, headers=headers)
    assert created.status_code == 201, created.text
    tag_id = created.json()["id"]
    customer = await make_customer()
    put = await client.post(f"/admin/customers/{customer.id}/tags", json={"tag_id": tag_id}, headers=headers)
    assert put.json() == {"added": True}
    again = await client.post(f"/admin/customers/{customer.id}/tags", json={"tag_id": tag_id}, headers=headers)
    assert again.json() == {"added": False}
    assert await AuditLogEntry.filter(action="crm.tag_put", target_id=str(customer.id), staff_id=staff.id).count() == 2
    card = await client.get(f"/admin/customers/{customer.id}/card", headers=headers)
    assert [t["tag"]["id"] for t in card.json()["tags"]] == [tag_id]
    off = await client.delete(f"/admin/customers/{customer.id}/tags/{tag_id}", headers=headers)
    assert off.json() == {"removed": True}
    rule_tag = await make_tag(TagKind.rule)
    refused = await client.post(f"/admin/customers/{customer.id}/tags", json={"tag_id": rule_tag.id}, headers=headers)
    assert refused.status_code == 409 and refused.json()["code"] == "tag_not_manual"
    as_rule = await client.post("/admin/crm/tags", json={"code": "age:x", "name": "x", "category": "age",
                                                         "kind": "rule"}, headers=headers)
    assert as_rule.status_code == 422 and as_rule.json()["detail"]["field"] == "kind"


async def test_rule_tags_follow_age_and_spend():
    today = clock.local_today()
    thirty = await make_customer(birth_date=date(today.year - 30, 1, 1))
    await make_consumption(thirty.id, 600_000, clock.now() - timedelta(days=3))
    await tasks.score_customers({})
    await tasks.apply_rule_tags({})
    codes = set(await Tag.filter(id__in=list(await _tag_ids(thirty.id, TagKind.rule))).values_list("code", flat=True))
    assert codes == {"age:25-34", "spend:5k-20k"}
    # The birth date corrected: the age band moves; running again changes nothing more.
    await thirty.__class__.filter(id=thirty.id).update(birth_date=date(today.year - 50, 1, 1))
    assert await tasks.apply_rule_tags({}) >= 2
    codes = set(await Tag.filter(id__in=list(await _tag_ids(thirty.id, TagKind.rule))).values_list("code", flat=True))
    assert codes == {"age:45-54", "spend:5k-20k"}
    before = await CustomerTag.filter(customer_id=thirty.id).count()
    await tasks.apply_rule_tags({})
    assert await CustomerTag.filter(customer_id=thirty.id).count() == before


async def _rule_codes(customer_id: int) -> set[str]:
    return set(await Tag.filter(id__in=list(await _tag_ids(customer_id, TagKind.rule))).values_list("code", flat=True))


async def test_interest_tags_come_from_booked_departments_and_pre_triage_forms():
    from booking import service as booking
    from tests.booking.factories import make_department, make_slot

    wrinkles = f"wrinkles-{secrets.token_hex(3)}"
    laser = await make_department(concerns=[f"pigment-{secrets.token_hex(3)}"])
    injection = await make_department(concerns=[wrinkles])
    surgery = await make_department()
    booked, triaged, cancelled = await make_customer(), await make_customer(), await make_customer()
    laser_slot = await make_slot(department=laser)
    surgery_slot = await make_slot(department=surgery)
    async with transaction() as conn:
        await booking.book(conn, customer_id=booked.id, slot_id=laser_slot.id)
        gone = await booking.book(conn, customer_id=cancelled.id, slot_id=surgery_slot.id)
        await booking.cancel(conn, customer_id=cancelled.id, booking_id=gone.id)
        # A form naming injection's concern, submitted without picking a department, and never booked:
        # routed to injection, which is what this customer came about.
        form = await booking.submit_triage(conn, customer_id=triaged.id, concerns=[wrinkles],
                                           answers={"pregnant": False, "anticoagulants": False,
                                                    "recent_procedure": False})
    assert form.suggested_department_id == injection.id
    await tasks.apply_rule_tags({})
    assert await _rule_codes(booked.id) == {f"interest:{laser.code.lower()}"}
    assert await _rule_codes(triaged.id) == {f"interest:{injection.code.lower()}"}
    assert await _rule_codes(cancelled.id) == set()  # a cancelled booking shows no interest


async def test_csv_import_takes_files_past_the_app_wide_body_limit_up_to_its_own(client):
    # The analyser's export runs to a few MB: the import has a 5 MB limit of its own, while every other route
    # keeps MAX_REQUEST_BODY_BYTES (1 MB in tests), which used to answer 413 first.
    [a] = await _skin_tags(1)
    customer = await make_customer()
    headers = {**staff_headers(await make_staff("front_desk")), "content-type": "text/csv"}
    today = clock.local_today()
    padded = ";".join([a.code] * (15_000 // (len(a.code) + 1)))  # one tag, repeated: still one skin tag
    rows = [f"{customer.referral_code},{(today - timedelta(days=d)).isoformat()},{padded}" for d in range(1, 101)]
    big = "\n".join(["customer,visit_date,tags", *rows]).encode()
    assert 1_400_000 < len(big) < 1_600_000
    imported = await client.post("/admin/crm/skin-analyses/import", content=big, headers=headers)
    assert imported.status_code == 200, imported.text[:300]
    assert imported.json() == {"rows_imported": 100}
    assert await _tag_ids(customer.id, TagKind.skin) == {a.id}

    # Past the import's own limit: its own refusal, naming the file (Litestar stops reading at the limit).
    too_big = b"customer,visit_date,tags\n" + b"x" * 6_000_000
    refused = await client.post("/admin/crm/skin-analyses/import", content=too_big, headers=headers)
    assert refused.status_code == 422, refused.text[:300]
    assert refused.json()["code"] == "validation_failed" and refused.json()["detail"]["field"] == "file"
    assert "too large" in refused.json()["message"]

    async def chunks():  # no Content-Length: Litestar counts the bytes as they arrive
        for start in range(0, len(too_big), 1_000_000):
            yield too_big[start:start + 1_000_000]
    refused = await client.post("/admin/crm/skin-analyses/import", content=chunks(), headers=headers)
    assert refused.status_code == 422 and refused.json()["detail"]["field"] == "file", refused.text[:300]

    # Any other route keeps the app-wide limit, this room's own manual skin analysis included.
    other = await client.post(f"/admin/customers/{customer.id}/skin-analyses", headers=headers | {
        "content-type": "application/json"}, content=b'{"visit_date": "2020-01-01", "tags": ["' + b"x" * 1_500_000 + b'"]}')
    assert other.status_code == 413, other.text[:300]
    assert other.json()["code"] == "payload_too_large"
