"""Staff accounts: the last active admin stays, and passwords follow NIST SP 800-63B (length and a blocklist)."""

from __future__ import annotations

import asyncio

import pytest

from kernel.identity.models import StaffMember
from tests.factories import make_staff, staff_headers


async def _active_admins() -> set[int]:
    return {s.id for s in await StaffMember.filter(is_active=True) if "admin" in s.role_set}


@pytest.fixture
async def sole_admin():
    """Only one active admin exists: every other admin of earlier tests is demoted for this test."""
    for staff in await StaffMember.filter(is_active=True):
        if "admin" in staff.role_set:
            await StaffMember.filter(id=staff.id).update(is_active=False)
    return await make_staff("admin")


async def test_the_last_active_admin_cannot_remove_their_role_or_disable_themselves(client, sole_admin):
    admin = staff_headers(sole_admin)
    for body, field in (({"roles": ["finance"]}, "roles"), ({"is_active": False}, "is_active")):
        refused = await client.patch(f"/admin/staff/{sole_admin.id}", json=body, headers=admin)
        assert refused.status_code == 409, refused.text
        assert refused.json()["code"] == "last_active_admin" and refused.json()["detail"]["field"] == field
    assert await _active_admins() == {sole_admin.id}
    # Keeping admin while adding a role is fine; so is demoting once another admin exists.
    widened = await client.patch(f"/admin/staff/{sole_admin.id}", json={"roles": ["admin", "finance"]}, headers=admin)
    assert widened.status_code == 200, widened.text
    other = await make_staff("admin")
    demoted = await client.patch(f"/admin/staff/{sole_admin.id}", json={"roles": ["finance"]},
                                 headers=staff_headers(other))
    assert demoted.status_code == 200 and await _active_admins() == {other.id}
    # Now `other` is the last one: nobody can disable or demote them, not even themselves.
    refused = await client.patch(f"/admin/staff/{other.id}", json={"is_active": False}, headers=staff_headers(other))
    assert refused.status_code == 409 and refused.json()["code"] == "last_active_admin"


async def test_two_admins_demoting_each_other_at_once_leave_one(client, sole_admin):
    second = await make_staff("admin")
    for _ in range(3):
        answers = await asyncio.gather(
            client.patch(f"/admin/staff/{second.id}", json={"roles": ["campaign"]}, headers=staff_headers(sole_admin)),
            client.patch(f"/admin/staff/{sole_admin.id}", json={"is_active": False}, headers=staff_headers(second)),
        )
        codes = sorted(a.status_code for a in answers)
        # One wins; the other is refused as the last admin (or, once its token was revoked by the winner, 401).
        assert codes[0] == 200 and codes[1] in (401, 409), [a.text for a in answers]
        assert len(await _active_admins()) == 1
        # Put both back for the next round.
        await StaffMember.filter(id__in=[sole_admin.id, second.id]).update(is_active=True, roles="admin")


@pytest.mark.parametrize(("password", "reason"), [
    (" " * 10, "blank"),
    (" " * 20, "blank"),
    ("\u3000" * 16, "blank"),  # ideographic spaces
    ("Tr0ub4dor&3", "too_short"),
    ("password1234567", "common"),
    ("Password 1234 56", "common"),
    ("correct horse battery staple", "common"),
    ("qwertyuiopasdfgh", "common"),
    ("aaaaaaaaaaaaaaaa", "pattern"),
    ("abcabcabcabcabcabc", "pattern"),
    ("0123456789:;<=>?", "pattern"),
    ("ZYXWVUTSRQPONMLK", "pattern"),
])
async def test_weak_staff_passwords_are_refused_with_the_reason(client, password, reason):
    admin = staff_headers(await make_staff("admin"))
    created = await client.post("/admin/staff", json={"username": "nurse_" + reason, "password": password,
                                                     "roles": ["front_desk"]}, headers=admin)
    assert created.status_code == 422, created.text
    assert created.json()["detail"] == created.json()["detail"] | {"field": "password", "reason": reason}
    assert not await StaffMember.filter(username="nurse_" + reason).exists()
    member = await make_staff("front_desk")
    reset = await client.patch(f"/admin/staff/{member.id}", json={"password": password}, headers=admin)
    assert reset.status_code == 422 and reset.json()["detail"]["reason"] == reason


async def test_a_passphrase_is_accepted_and_the_username_is_not(client):
    admin = staff_headers(await make_staff("admin"))
    ok = await client.post("/admin/staff", json={"username": "nurse_wang", "password": "plum blossom tea at nine",
                                                "roles": ["front_desk"]}, headers=admin)
    assert ok.status_code == 201, ok.text
    login = await client.post("/admin/auth/login", json={"username": "nurse_wang", "password": "plum blossom tea at nine"})
    assert login.status_code == 200
    named = await client.post("/admin/staff", json={"username": "nurse_liu", "password": "nurse_liu the best ever",
                                                   "roles": ["front_desk"]}, headers=admin)
    assert named.status_code == 422 and named.json()["detail"]["reason"] == "username"
