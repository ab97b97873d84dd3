"""Referral programs through the staff API: roles, validation that names the field, audit."""

from __future__ import annotations

from datetime import timedelta

from campaigns.referrals.models import ReferralProgram
from kernel import clock
from kernel.identity.models import AuditLogEntry
from tests.factories import make_staff, staff_headers


def program_body(**overrides):
    body = {
        "name": "Bring a bestie",
        "starts_at": (clock.now() - timedelta(hours=1)).isoformat(),
        "referrer_reward_type": "percent",
        "referrer_reward_value": 800,
        "second_level_reward_type": "fixed_fen",
        "second_level_reward_value": 1000,
        "welcome_reward_type": "points",
        "welcome_points": 200,
        "hold_days": 14,
        "min_amount_fen": 98000,
        "monthly_cap_count": 10,
    }
    body.update(overrides)
    return body


async def test_campaign_staff_create_change_and_list_programs(client):
    staff = await make_staff("campaign")
    headers = staff_headers(staff)
    created = await client.post("/admin/referral-programs", json=program_body(), headers=headers)
    assert created.status_code == 201, created.text
    program = created.json()
    assert program["is_active"] is False and program["referrer_reward_value"] == 800

    changed = await client.patch(
        f"/admin/referral-programs/{program['id']}", json={"is_active": True, "monthly_cap_count": None},
        headers=headers,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["is_active"] is True and changed.json()["monthly_cap_count"] is None
    assert changed.json()["hold_days"] == 14  # untouched fields stay
    listed = await client.get("/admin/referral-programs", headers=headers)
    assert program["id"] in {p["id"] for p in listed.json()["items"]}
    audit = await AuditLogEntry.filter(target_type="referral_program", target_id=str(program["id"])).order_by("id")
    assert [a.action for a in audit] == ["referral_program.create", "referral_program.update"]
    assert audit[1].detail == {"is_active": True, "monthly_cap_count": None}
    await ReferralProgram.filter(id=program["id"]).update(is_active=False)

    finance = await make_staff("finance")
    refused = await client.post("/admin/referral-programs", json=program_body(), headers=staff_headers(finance))
    assert refused.status_code == 403
    missing = await client.get("/admin/referral-programs/999999999", headers=headers)
    assert missing.status_code == 404 and missing.json()["code"] == "referral_program_not_found"


async def test_program_validation_names_the_field(client):
    headers = staff_headers(await make_staff("campaign"))
    cases = [
        (program_body(referrer_reward_value=20000), 422, "referrer_reward_value"),  # over 100%
        (program_body(ends_at=(clock.now() - timedelta(days=2)).isoformat()), 422, "ends_at"),
        (program_body(qualify_within_days=60, binding_valid_days=30), 422, "qualify_within_days"),
        (program_body(welcome_reward_type="voucher"), 422, "welcome_voucher_title"),
        (program_body(welcome_points=0), 422, "welcome_points"),
        (program_body(second_level_reward_value=0), 422, "second_level_reward_value"),
        (program_body(hold_days=-1), 400, "hold_days"),
        (program_body(referrer_reward_type="cashback"), 400, "referrer_reward_type"),
        (program_body(third_level_reward_value=5), 400, None),  # there is no third level to configure
        (program_body(starts_at="2025-01-01T00:00:00"), 400, "starts_at"),  # no time zone
        # Valid ISO instants whose offset carries them past the calendar's ends in UTC.
        (program_body(starts_at="0001-01-01T00:00:00+14:00"), 422, "starts_at"),
        (program_body(ends_at="9999-12-31T23:59:59-12:00"), 422, "ends_at"),
    ]
    before = await ReferralProgram.all().count()
    for body, status, field in cases:
        response = await client.post("/admin/referral-programs", json=body, headers=headers)
        assert response.status_code == status, (field, response.text)
        if field:
            assert response.json()["detail"]["field"] == field, response.text
    assert await ReferralProgram.all().count() == before

    created = (await client.post("/admin/referral-programs", json=program_body(), headers=headers)).json()
    changed = await client.patch(f"/admin/referral-programs/{created['id']}",
                                 json={"ends_at": "9999-12-31T23:59:59-12:00"}, headers=headers)
    assert changed.status_code == 422 and changed.json()["detail"]["field"] == "ends_at", changed.text
    assert (await ReferralProgram.get(id=created["id"])).ends_at is None
