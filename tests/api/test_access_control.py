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
            # Guards add up (controller and handler): a member must pass every one of them.
            allowed = None
            for guard in declared:
                if guard.allowed_roles is not None:
                    allowed = guard.allowed_roles if allowed is None else allowed & guard.allowed_roles
            for method in handler.http_methods:
                found.append((method, route.path, allowed))
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


def _with_claims(token: str, **changes) -> str:
    """The same token with some claims rewritten and the original signature kept (a tampered token)."""
    import base64
    import json

    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{body}.{signature}"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_staff_tokens_tampered_forged_expired_or_of_a_missing_member(client):
    from kernel.identity.tokens import issue_staff_token

    member = await make_staff("front_desk")
    token = staff_headers(member)["Authorization"].split()[1]
    assert (await client.get("/admin/bookings", headers=_bearer(token))).status_code == 200
    # Promoting oneself inside the token breaks the signature.
    for tampered in (_with_claims(token, roles=["admin"]), _with_claims(token, sub="1"),
                     _with_claims(token, exp=9999999999)):
        r = await client.get("/admin/staff", headers=_bearer(tampered))
        assert r.status_code == 401 and r.json()["code"] == "token_invalid", r.text
    forged = jwt.encode({"sub": str(member.id), "typ": "staff", "roles": ["admin"], "ver": member.token_version,
                         "iss": "clinic-miniprogram", "iat": 0, "exp": 9999999999}, "not-our-key" * 4,
                        algorithm="HS256")
    assert (await client.get("/admin/staff", headers=_bearer(forged))).status_code == 401
    ghost, _ = issue_staff_token(999_999_999, frozenset({"admin"}), 0)
    assert (await client.get("/admin/auth/me", headers=_bearer(ghost))).status_code == 401

    clock.set_now(clock.now() + timedelta(hours=12, seconds=1))  # the staff token lives 12 hours
    r = await client.get("/admin/bookings", headers=_bearer(token))
    assert r.status_code == 401 and r.json()["code"] == "token_expired"


async def test_roles_changed_after_issue_take_effect_at_once(client):
    from kernel.identity.models import StaffMember
    from kernel.identity.tokens import issue_staff_token

    admin = await make_staff("admin")
    member = await make_staff("finance", password="finance pass 123")

    async def login() -> dict[str, str]:
        r = await client.post("/admin/auth/login", json={"username": member.username, "password": "finance pass 123"})
        assert r.status_code == 200, r.text
        return _bearer(r.json()["access_token"])

    before = await login()
    assert (await client.get("/admin/orders", headers=before)).status_code == 200
    moved = await client.patch(f"/admin/staff/{member.id}", json={"roles": ["front_desk"]}, headers=staff_headers(admin))
    assert moved.status_code == 200
    # The old token is dead for every route, the new role's included: log in again.
    for path in ("/admin/orders", "/admin/bookings", "/admin/auth/me"):
        r = await client.get(path, headers=before)
        assert r.status_code == 401 and r.json()["code"] == "token_invalid", (path, r.text)
    after = await login()
    assert (await client.get("/admin/bookings", headers=after)).status_code == 200
    refused = await client.get("/admin/orders", headers=after)
    assert refused.status_code == 403 and refused.json()["code"] == "role_required"

    # Roles come from the database, never from the token: a token of the current version that
    # claims more (minted by a bug, or cached by a client) gets what the member holds now.
    current = await StaffMember.get(id=member.id)
    claiming, _ = issue_staff_token(member.id, frozenset({"admin", "finance"}), current.token_version)
    for path in ("/admin/orders", "/admin/staff"):
        r = await client.get(path, headers=_bearer(claiming))
        assert r.status_code == 403 and r.json()["code"] == "role_required", path

    # A password reset revokes as well; disabling refuses even a token minted at the new version.
    reset = await client.patch(f"/admin/staff/{member.id}", json={"password": "another pass 456"},
                               headers=staff_headers(admin))
    assert reset.status_code == 200
    assert (await client.get("/admin/bookings", headers=after)).status_code == 401
    await client.patch(f"/admin/staff/{member.id}", json={"is_active": False}, headers=staff_headers(admin))
    current = await StaffMember.get(id=member.id)
    fresh, _ = issue_staff_token(member.id, current.role_set, current.token_version)
    disabled = await client.get("/admin/bookings", headers=_bearer(fresh))
    assert disabled.status_code == 403 and "staff_disabled" in disabled.text


async def test_finance_actions_leave_audit_rows_naming_the_staff_member_and_request(client, redis):
    """Settlement steps and order refunds: one audit row each, with who did it and the request's id;
    a refused step leaves none. Finance reads the trail through the API."""
    from orders.models import Order
    from kernel.identity.models import AuditLogEntry
    from tests.orders.factories import make_order, run_jobs
    from tests.campaigns.referrals.test_settlement import payable_reward, today

    maker, checker = await make_staff("finance"), await make_staff("finance")
    await payable_reward(await make_customer(), 4_200)
    customer = await make_customer()
    order = await make_order(customer, unit_price_fen=8_800)
    paid = await client.post(f"/sandbox/payments/{order.out_trade_no}/succeed", headers=customer_headers(customer))
    assert paid.status_code == 200, paid.text
    await run_jobs(redis)

    done: list[tuple[str, str, int, str]] = []  # (action, target id, staff id, request id)

    async def act(staff, method: str, url: str, action: str, target: str | None = None,
                  extra_headers: dict | None = None, **kwargs):
        r = await client.request(method, url, headers=staff_headers(staff) | (extra_headers or {}), **kwargs)
        assert r.status_code in (200, 201), (url, r.text)
        target = target or str(r.json()["id"])
        done.append((action, target, staff.id, r.headers["x-request-id"]))
        return r

    batch = (await act(maker, "POST", "/admin/settlements", "settlement.create", json={"up_to": today()})).json()
    bid = str(batch["id"])
    own = await client.post(f"/admin/settlements/{bid}/approve", headers=staff_headers(maker))
    assert own.status_code == 403  # maker-checker: refused, and so not in the trail
    await act(checker, "POST", f"/admin/settlements/{bid}/approve", "settlement.approve")
    await act(checker, "POST", f"/admin/settlements/{bid}/mark-paid", "settlement.mark_paid",
              json={"external_ref": "BANK-" + secrets_hex()})
    await act(maker, "GET", f"/admin/settlements/{bid}/export", "settlement.export", target=bid)
    await act(checker, "POST", f"/admin/orders/{order.id}/refunds", "orders.refund", target=str(order.id),
              json={"reason": "goodwill", "amount_fen": 1_000, "note": "late"},
              extra_headers={"Idempotency-Key": "refund-" + secrets_hex()})
    await act(maker, "GET", "/admin/orders/export.csv", "orders.export", target="-")

    for action, target, staff_id, request_id in done:
        trail = await client.get("/admin/audit-log", params={"action": action, "target_id": target},
                                 headers=staff_headers(checker))
        assert trail.status_code == 200
        rows = [e for e in trail.json()["items"] if e["request_id"] == request_id]
        assert len(rows) == 1, (action, trail.json())
        assert rows[0]["staff_id"] == staff_id
    assert not await AuditLogEntry.filter(action="settlement.approve", target_id=bid, staff_id=maker.id).exists()
    assert (await Order.get(id=order.id)).refund_reserved_fen == 1_000
    await run_jobs(redis)  # the refund is pushed; nothing is left deferred for later burst workers


def secrets_hex() -> str:
    import secrets

    return secrets.token_hex(6)
