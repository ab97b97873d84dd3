"""Who may reach what: customer tokens never reach /admin, each staff role reaches only its routes."""

from __future__ import annotations

import re
from datetime import timedelta

import jwt
import pytest

from kernel import clock
from kernel.identity.models import StaffRole
from tests.factories import customer_headers, make_customer, make_staff, staff_headers

ROLES = [r.value for r in StaffRole]


def admin_routes(app) -> list[tuple[str, str, frozenset[str] | None]]:
    """Every /admin route with the roles its guard declares (None = any staff member)."""
    found = []
    for route in app.routes:
        if not route.path.startswith("/admin") or route.path.startswith("/admin/auth/login"):
            continue
        for handler in getattr(route, "route_handlers", []):
            if set(handler.http_methods) == {"OPTIONS"}:
                continue  # Litestar's automatic CORS preflight handler
            guards = list(handler.resolve_guards())
            declared = [g for g in guards if hasattr(g, "allowed_roles")]
            assert declared, f"{route.path} has no staff guard"
            for method in handler.http_methods:
                found.append((method, route.path, declared[0].allowed_roles))
    return found


def concrete(path: str) -> str:
    # Fill path parameters with an id that exists nowhere: the guard runs before any lookup.
    return re.sub(r"\{[^}:]+(:[a-z]+)?\}", "999999999", path)


async def test_every_admin_route_declares_roles_and_refuses_others(app, client):
    routes = admin_routes(app)
    assert routes, "no admin routes found"
    staff_by_role = {role: await make_staff(role) for role in ROLES}
    customer = await make_customer()
    for method, path, allowed in routes:
        url = concrete(path)
        # No token, a customer token: always refused before anything else happens.
        anonymous = await client.request(method, url)
        assert anonymous.status_code == 401, (method, path, anonymous.text)
        as_customer = await client.request(method, url, headers=customer_headers(customer))
        assert as_customer.status_code == 403, (method, path)
        assert as_customer.json()["code"] == "wrong_token_kind"
        for role, staff in staff_by_role.items():
            response = await client.request(method, url, headers=staff_headers(staff), json={})
            if allowed is None or role in allowed:
                assert response.status_code != 403, (method, path, role, response.text)
            else:
                assert response.status_code == 403, (method, path, role, response.status_code)
                assert response.json()["code"] == "role_required"


async def test_staff_login_and_disabled_member(client):
    admin = await make_staff("admin")
    member = await make_staff("front_desk", password="front desk pass 1")
    login = await client.post("/admin/auth/login", json={"username": member.username, "password": "front desk pass 1"})
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    assert (await client.get("/admin/auth/me", headers={"Authorization": f"Bearer {token}"})).status_code == 200

    wrong = await client.post("/admin/auth/login", json={"username": member.username, "password": "nope nope nope"})
    assert wrong.status_code == 401 and wrong.json()["code"] == "invalid_credentials"
    unknown = await client.post("/admin/auth/login", json={"username": "ghost", "password": "whatever123"})
    assert unknown.status_code == 401 and unknown.json()["code"] == "invalid_credentials"

    disable = await client.patch(f"/admin/staff/{member.id}", json={"is_active": False}, headers=staff_headers(admin))
    assert disable.status_code == 200 and disable.json()["is_active"] is False
    # The token issued before disabling stops working at once, and login is refused.
    revoked = await client.get("/admin/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert revoked.status_code == 401
    relogin = await client.post("/admin/auth/login", json={"username": member.username, "password": "front desk pass 1"})
    assert relogin.status_code == 403 and relogin.json()["code"] == "staff_disabled"

    audit = await client.get(
        "/admin/audit-log", params={"target_type": "staff_member", "target_id": str(member.id)},
        headers=staff_headers(admin),
    )
    assert audit.status_code == 200
    entry = audit.json()["items"][0]
    assert entry["action"] == "staff.update" and entry["staff_id"] == admin.id
    assert entry["detail"] == {"is_active": False} and entry["request_id"]


async def test_admin_creates_staff_and_validation_names_field(client):
    admin = await make_staff("admin")
    headers = staff_headers(admin)
    created = await client.post(
        "/admin/staff", json={"username": "nurse.li", "password": "a long password", "roles": ["front_desk"]},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    dup = await client.post(
        "/admin/staff", json={"username": "nurse.li", "password": "a long password", "roles": ["front_desk"]},
        headers=headers,
    )
    assert dup.status_code == 409 and dup.json()["code"] == "username_taken"
    bad_role = await client.post(
        "/admin/staff", json={"username": "x.y.z", "password": "a long password", "roles": ["god"]}, headers=headers
    )
    assert bad_role.status_code == 400 and bad_role.json()["detail"]["field"].startswith("roles")
    short = await client.post(
        "/admin/staff", json={"username": "x.y.z", "password": "short", "roles": ["finance"]}, headers=headers
    )
    assert short.status_code == 400 and short.json()["detail"]["field"] == "password"


async def test_tampered_and_expired_tokens(client):
    customer = await make_customer()
    headers = customer_headers(customer)
    token = headers["Authorization"].split()[1]
    header, payload, signature = token.split(".")
    tampered = f"{header}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    r = await client.get("/app/me", headers={"Authorization": f"Bearer {tampered}"})
    assert r.status_code == 401 and r.json()["code"] == "token_invalid"

    forged = jwt.encode({"sub": str(customer.id), "typ": "customer", "iss": "clinic-miniprogram",
                         "iat": 0, "exp": 9999999999}, "not-our-key", algorithm="HS256")
    r = await client.get("/app/me", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401

    none_alg = jwt.encode({"sub": str(customer.id), "typ": "customer", "iss": "clinic-miniprogram",
                           "iat": 0, "exp": 9999999999}, key=None, algorithm="none")
    r = await client.get("/app/me", headers={"Authorization": f"Bearer {none_alg}"})
    assert r.status_code == 401

    clock.set_now(clock.now() + timedelta(days=8))
    r = await client.get("/app/me", headers=headers)
    assert r.status_code == 401 and r.json()["code"] == "token_expired"


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "Bearer   ", "token"])
async def test_malformed_authorization_header(client, header):
    r = await client.get("/app/me", headers={"Authorization": header})
    assert r.status_code == 401 and r.json()["code"] in {"token_invalid", "token_missing"}


async def test_staff_token_cannot_use_customer_routes(client):
    staff = await make_staff("admin")
    r = await client.get("/app/me", headers=staff_headers(staff))
    assert r.status_code == 403 and r.json()["code"] == "wrong_token_kind"
