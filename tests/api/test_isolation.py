"""Customer isolation and sensitive data: another customer's ids give 404 on every customer route,
shared views show only what they must, phone numbers and triage answers stay out of logs, responses
and the database's clear text.

The route table below is checked against the app's own OpenAPI document: a new customer route that
takes an identifier (path, query, header or body) fails `test_table_covers_every_customer_identifier`
until it is classified here, with an attack when the object belongs to a customer.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import secrets
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aiomysql
import msgspec
import pytest
from structlog._config import BoundLoggerLazyProxy

from api.logging import configure_logging
from api.security import customer_guard
from booking.models import Booking, BookingStatus, Slot, Survey, TriageSubmission
from campaigns.groupbuy.models import CampaignKind
from orders.models import Order
from campaigns.referrals.models import BindingStatus, ReferralBinding
from kernel import clock, crypto
from kernel.identity.models import Customer
from kernel.settings import get_settings
from points_mall.models import MallItem, Voucher
from tests import conftest
from tests.booking.factories import make_department, make_slot
from tests.orders.factories import discard_future_jobs, make_order, run_jobs
from tests.campaigns.groupbuy_factories import make_campaign, pay
from tests.campaigns.referrals.factories import make_program
from tests.factories import customer_headers, make_customer, make_staff, staff_headers
from tests.points_mall.factories import balance_of, funded_customer, give_points, make_item

MISSING = 999_999_999
ALL_ROLES = ("admin", "campaign", "finance", "front_desk")
NO = {"pregnant": False, "anticoagulants": False, "recent_procedure": False}


@pytest.fixture(autouse=True)
async def no_deferred_leftovers(redis):
    """Orders defer their payment-window job; left on the queue it would stall later burst workers."""
    yield
    await discard_future_jobs(redis)


# ============================================================== the routes and their identifiers


def openapi_operations(app) -> Iterator[tuple[str, str, dict]]:
    doc = app.openapi_schema.to_schema()
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield method.upper(), path, operation


def _body_fields(app, operation: dict) -> list[str]:
    body = operation.get("requestBody")
    if not body:
        return []
    schema = next(iter(body["content"].values()))["schema"]
    if "$ref" in schema:
        schema = app.openapi_schema.to_schema()["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return list(schema.get("properties", {}))


_IDENTIFIER = re.compile(r"(^|_)(id|no|code|key)$")


def customer_identifiers(app) -> set[tuple[str, str, str]]:
    """(method, path, "where:name") of every identifier a customer route takes, wherever it is sent."""
    found = set()
    for method, path, operation in openapi_operations(app):
        if not path.startswith(("/app/", "/sandbox/")):
            continue
        names = [f"{p['in']}:{p['name']}" for p in operation.get("parameters", [])]
        names += [f"body:{name}" for name in _body_fields(app, operation)]
        for where in names:
            name = where.split(":", 1)[1].lower().replace("-", "_")
            if _IDENTIFIER.search(name):
                found.add((method, path, where))
    return found


# Identifiers of objects that are not a customer's own: catalogue rows everyone may see, codes
# WeChat issues, the referral code a customer shares on purpose. Each says why.
NOT_OWNED: dict[tuple[str, str, str], str] = {
    ("POST", "/app/auth/login", "body:code"): "the wx.login code WeChat gave this device",
    ("POST", "/app/auth/login", "body:referral_code"): "shared on purpose (the referral link)",
    ("POST", "/app/me/phone", "body:code"): "the getPhoneNumber code WeChat gave this customer",
    ("GET", "/app/mall/items/{item_id}", "path:item_id"): "catalogue: items on the shelf",
    ("POST", "/app/mall/redemptions", "body:item_id"): "catalogue: items on the shelf",
    ("GET", "/app/triage/questionnaires/{department_id}", "path:department_id"): "catalogue",
    ("POST", "/app/triage", "body:department_id"): "catalogue",
    ("GET", "/app/booking/slots", "query:branch_id"): "catalogue",
    ("GET", "/app/booking/slots", "query:department_id"): "catalogue",
    ("GET", "/app/booking/slots", "query:practitioner_id"): "catalogue",
    ("POST", "/app/bookings", "body:slot_id"): "catalogue: open slots",
    ("POST", "/app/bookings", "body:service_id"): "catalogue",
    ("POST", "/app/bookings/{booking_id}/reschedule", "body:slot_id"): "catalogue: open slots",
    ("GET", "/app/campaigns/{campaign_id}", "path:campaign_id"): "catalogue: running campaigns",
    ("POST", "/app/campaigns/{campaign_id}/purchases", "path:campaign_id"): "catalogue",
    ("POST", "/app/campaigns/{campaign_id}/purchases", "body:sku_id"): "catalogue",
    ("POST", "/app/groups", "body:campaign_id"): "catalogue",
    ("POST", "/app/groups", "body:sku_id"): "catalogue",
    # Shared on purpose; what they show and do is attacked by the tests named.
    ("GET", "/app/groups/{group_id}", "path:group_id"):
        "the shareable view: test_group_share_view_shows_only_nicknames_and_avatars",
    ("POST", "/app/groups/{group_id}/join", "path:group_id"):
        "friends join a shared group: test_group_share_view_shows_only_nicknames_and_avatars",
    ("POST", "/app/shop/coupons/claim", "body:template_id"): "catalogue: claimable coupon templates",
    ("POST", "/app/mall/redemptions", "header:Idempotency-Key"):
        "scoped to the caller: test_another_customers_idempotency_key_is_a_new_redemption",
    ("POST", "/app/orders", "header:Idempotency-Key"):
        "scoped to the caller: tests/orders/test_purchase_idempotency.py::"
        "test_the_key_is_kept_per_customer_and_orders_without_a_key_stay_as_before",
}


@dataclass
class Attack:
    """Customer B sends `method url` with A's identifier; A's rows read by `state` must not change."""

    method: str
    url: str
    missing_url: str  # the same request naming an object that exists nowhere
    state: Callable[[], Awaitable[Any]]
    owner_status: int  # what A gets for the same request: proves the 404 was about ownership
    body: dict | None = None
    markers: list[str] = field(default_factory=list)  # A's data that must not show up in B's answer


async def _triage(client, owner, department, notes: str = "") -> dict:
    answers = {**NO, "notes": notes} if notes else NO
    r = await client.post("/app/triage", headers=customer_headers(owner),
                          json={"department_id": department.id, "answers": answers})
    assert r.status_code == 201, r.text
    return r.json()


async def _booking(client, owner, *, slot=None, status: BookingStatus | None = None) -> dict:
    slot = slot or await make_slot()
    r = await client.post("/app/bookings", headers=customer_headers(owner), json={"slot_id": slot.id})
    assert r.status_code == 201, r.text
    if status is not None:
        await Booking.filter(id=r.json()["id"]).update(status=status)
    return r.json()


async def _booking_state(booking_id: int) -> tuple:
    booking = await Booking.get(id=booking_id)
    slot = await Slot.get(id=booking.slot_id)
    surveys = await Survey.filter(booking_id=booking_id).count()
    return booking.status, booking.slot_id, booking.cancelled_at, slot.booked, surveys


async def _order_state(order_id: int) -> tuple:
    order = await Order.get(id=order_id)
    return order.status, order.paid_fen, order.prepay_id, order.paid_at


async def attack_triage_detail(client, owner) -> Attack:
    department = await make_department(concerns=["acne-" + secrets.token_hex(3)])
    secret = "iso-note-" + secrets.token_hex(6)
    triage = await _triage(client, owner, department, notes=secret)
    return Attack("GET", f"/app/triage/{triage['id']}", f"/app/triage/{MISSING}",
                  state=lambda: TriageSubmission.filter(id=triage["id"]).values_list("answers_sealed", flat=True),
                  owner_status=200, markers=[secret])


async def attack_booking_with_someone_elses_triage(client, owner) -> Attack:
    department = await make_department(concerns=["acne-" + secrets.token_hex(3)])
    triage = await _triage(client, owner, department)
    slot = await make_slot(department=department)

    async def state():
        return await Booking.filter(triage_id=triage["id"]).count(), (await Slot.get(id=slot.id)).booked

    return Attack("POST", "/app/bookings", "/app/bookings", state=state, owner_status=201,
                  body={"slot_id": slot.id, "triage_id": triage["id"]})


def _booking_attack(suffix: str, method: str, owner_status: int, *, status: BookingStatus | None = None,
                    body: dict | Callable[[Slot], Awaitable[dict]] | None = None):
    async def build(client, owner) -> Attack:
        slot = await make_slot()
        booking = await _booking(client, owner, slot=slot, status=status)
        payload = await body(slot) if callable(body) else body
        return Attack(method, f"/app/bookings/{booking['id']}{suffix}", f"/app/bookings/{MISSING}{suffix}",
                      state=lambda: _booking_state(booking["id"]), owner_status=owner_status, body=payload)

    return build


async def _another_slot_of(slot) -> dict:
    other = await make_slot(department=await slot.department, starts_in=timedelta(days=4))
    return {"slot_id": other.id}


def _order_attack(path: Callable[[Order], str], method: str, missing: str, *, names_trade_no: bool = False):
    async def build(client, owner) -> Attack:
        order = await make_order(owner)
        # A route addressed by out_trade_no may echo the caller's own input back; other routes never show it.
        return Attack(method, path(order), missing, state=lambda: _order_state(order.id), owner_status=200,
                      markers=[] if names_trade_no else [order.out_trade_no])

    return build


async def attack_voucher_cancel(client, owner) -> Attack:
    await give_points_to(owner, 500)
    item = await make_item(points_price=100, stock_total=5)
    r = await client.post("/app/mall/redemptions", headers={**customer_headers(owner), "Idempotency-Key": _key()},
                          json={"item_id": item.id, "quantity": 1})
    assert r.status_code == 201, r.text
    voucher = r.json()["vouchers"][0]

    async def state():
        row = await Voucher.get(id=voucher["id"])
        stock = await MallItem.get(id=item.id)
        return row.status, row.cancelled_at, await balance_of(owner.id), stock.stock_reserved

    return Attack("POST", f"/app/vouchers/{voucher['id']}/cancel", f"/app/vouchers/{MISSING}/cancel",
                  state=state, owner_status=200, markers=[voucher["code"]])


def _coupon_attack(path: str, owner_status: int):
    """B names A's coupon at checkout: 404 as for a coupon that does not exist, and A's coupon stays A's."""
    async def build(client, owner) -> Attack:
        from orders.product_models import Coupon
        from tests.orders.shop_factories import give_coupon, make_product, make_template

        product = await make_product("product", price_fen=20_000)
        coupon = await give_coupon(owner.id, (await make_template("cash_off")).id)

        async def state():
            row = await Coupon.get(id=coupon.id)
            return row.status, row.order_id, await Order.filter(coupon_id=coupon.id).count()

        body = {"items": [{"product_id": product.id}], "coupon_id": coupon.id}
        attack = Attack("POST", path, path, state=state, owner_status=owner_status, body=body)
        return attack

    return build


async def give_points_to(customer, points: int) -> None:
    await give_points(customer.id, points, "iso:" + secrets.token_hex(6))


def _key() -> str:
    return "iso-" + secrets.token_hex(8)


# Identifiers of objects a customer owns, with the attack that proves nobody else reaches them.
OWNED: dict[tuple[str, str, str], Callable[[Any, Customer], Awaitable[Attack]]] = {
    ("GET", "/app/triage/{triage_id}", "path:triage_id"): attack_triage_detail,
    ("POST", "/app/bookings", "body:triage_id"): attack_booking_with_someone_elses_triage,
    ("GET", "/app/bookings/{booking_id}", "path:booking_id"): _booking_attack("", "GET", 200),
    ("POST", "/app/bookings/{booking_id}/cancel", "path:booking_id"): _booking_attack("/cancel", "POST", 200),
    ("POST", "/app/bookings/{booking_id}/reschedule", "path:booking_id"):
        _booking_attack("/reschedule", "POST", 200, body=_another_slot_of),
    ("POST", "/app/bookings/{booking_id}/survey", "path:booking_id"):
        _booking_attack("/survey", "POST", 201, status=BookingStatus.completed,
                        body={"score": 5, "comment": "lovely"}),
    ("GET", "/app/orders/{order_id}", "path:order_id"):
        _order_attack(lambda o: f"/app/orders/{o.id}", "GET", f"/app/orders/{MISSING}"),
    ("POST", "/app/orders/{order_id}/pay", "path:order_id"):
        _order_attack(lambda o: f"/app/orders/{o.id}/pay", "POST", f"/app/orders/{MISSING}/pay"),
    ("POST", "/app/orders/{order_id}/cancel", "path:order_id"):
        _order_attack(lambda o: f"/app/orders/{o.id}/cancel", "POST", f"/app/orders/{MISSING}/cancel"),
    ("POST", "/sandbox/payments/{out_trade_no}/succeed", "path:out_trade_no"):
        _order_attack(lambda o: f"/sandbox/payments/{o.out_trade_no}/succeed", "POST",
                      "/sandbox/payments/no-such-trade-no/succeed", names_trade_no=True),
    ("POST", "/app/vouchers/{voucher_id}/cancel", "path:voucher_id"): attack_voucher_cancel,
    ("POST", "/app/orders/quote", "body:coupon_id"): _coupon_attack("/app/orders/quote", 200),
    ("POST", "/app/orders", "body:coupon_id"): _coupon_attack("/app/orders", 201),
}


def test_table_covers_every_customer_identifier(app):
    found = customer_identifiers(app)
    assert found, "no customer routes found"
    classified = set(OWNED) | set(NOT_OWNED)
    assert not set(OWNED) & set(NOT_OWNED)
    unclassified = sorted(found - classified)
    assert not unclassified, (
        "customer routes take identifiers this table does not cover; add each to OWNED (with an attack) "
        f"or NOT_OWNED (with the reason): {unclassified}"
    )
    stale = sorted(classified - found)
    assert not stale, f"the table names identifiers no route takes any more: {stale}"


async def test_every_customer_route_requires_a_customer_token(app, client):
    staff = await make_staff("admin")
    checked = 0
    for route in app.routes:
        if not route.path.startswith(("/app/", "/sandbox/")) or route.path == "/app/auth/login":
            continue
        for handler in route.route_handlers:
            if set(handler.http_methods) == {"OPTIONS"}:
                continue
            assert customer_guard in handler.resolve_guards(), route.path
            for method in handler.http_methods:
                url = re.sub(r"\{[^}:]+(:[a-z]+)?\}", str(MISSING), route.path)
                anonymous = await client.request(method, url)
                assert anonymous.status_code == 401, (method, route.path, anonymous.text)
                as_staff = await client.request(method, url, headers=staff_headers(staff))
                assert as_staff.status_code == 403 and as_staff.json()["code"] == "wrong_token_kind", route.path
                checked += 1
    assert checked >= 30


@pytest.mark.parametrize("key", sorted(OWNED), ids=lambda k: f"{k[0]} {k[1]} {k[2]}")
async def test_another_customers_identifier_is_not_found(client, key):
    owner, intruder = await make_customer(phone="139" + str(secrets.randbelow(10**8)).zfill(8)), await make_customer()
    attack = await OWNED[key](client, owner)
    before = await attack.state()

    stolen = await client.request(attack.method, attack.url, headers=customer_headers(intruder), json=attack.body)
    missing = await client.request(attack.method, attack.missing_url, headers=customer_headers(intruder),
                                   json=attack.body)
    assert stolen.status_code == 404, (key, stolen.status_code, stolen.text)
    # Indistinguishable from an object that does not exist: same code and message, no more detail.
    assert missing.status_code == 404, missing.text
    assert (stolen.json()["code"], stolen.json()["message"]) == (missing.json()["code"], missing.json()["message"])
    assert stolen.json()["detail"].keys() == missing.json()["detail"].keys()
    for marker in [owner.nickname, owner.openid, owner.phone_masked, *attack.markers]:
        assert marker not in stolen.text, (key, marker)
    assert await attack.state() == before, f"{key}: the intruder's request changed the owner's data"

    mine = await client.request(attack.method, attack.url, headers=customer_headers(owner), json=attack.body)
    assert mine.status_code == attack.owner_status, (key, mine.text)


async def test_another_customers_idempotency_key_is_a_new_redemption(client):
    owner, intruder = await funded_customer(300), await funded_customer(300)
    item = await make_item(points_price=100, stock_total=10)
    key = _key()
    first = await client.post("/app/mall/redemptions", headers={**customer_headers(owner), "Idempotency-Key": key},
                              json={"item_id": item.id, "quantity": 1})
    assert first.status_code == 201, first.text
    # Same key from someone else: their own redemption, paid with their own points, never the owner's.
    theirs = await client.post("/app/mall/redemptions",
                               headers={**customer_headers(intruder), "Idempotency-Key": key},
                               json={"item_id": item.id, "quantity": 1})
    assert theirs.status_code == 201, theirs.text
    assert theirs.json()["id"] != first.json()["id"] and theirs.json()["customer_id"] == intruder.id
    assert {v["code"] for v in theirs.json()["vouchers"]}.isdisjoint(v["code"] for v in first.json()["vouchers"])
    assert await balance_of(owner.id) == 200 and await balance_of(intruder.id) == 200


# ============================================================== shared views


async def test_group_share_view_shows_only_nicknames_and_avatars(client):
    campaign, sku = await make_campaign(CampaignKind.bestie_card)
    leader = await make_customer(phone="137" + str(secrets.randbelow(10**8)).zfill(8), avatar_url="https://a/l.png")
    friend, viewer = await make_customer(avatar_url="https://a/f.png"), await make_customer()
    opened = await client.post("/app/groups", headers=customer_headers(leader),
                               json={"campaign_id": campaign.id, "sku_id": sku.id})
    assert opened.status_code == 201, opened.text
    group_id = opened.json()["group_id"]
    await pay(opened.json()["order_id"])  # the group opens to friends once the leader has paid
    joined = await client.post(f"/app/groups/{group_id}/join", headers=customer_headers(friend))
    assert joined.status_code == 201, joined.text
    orders = [await Order.get(id=s.json()["order_id"]) for s in (opened, joined)]

    view = await client.get(f"/app/groups/{group_id}", headers=customer_headers(viewer))
    assert view.status_code == 200, view.text
    body = view.json()
    # Exactly the fields the issue allows: the deal, seats and time left, members' nicknames and avatars.
    assert set(body) == {"id", "campaign_id", "campaign_title", "sku_title", "group_price_fen", "original_price_fen",
                         "status", "size", "seats_left", "paid_count", "deadline", "seconds_left", "members"}
    assert [set(m) for m in body["members"]] == [{"nickname", "avatar_url", "is_leader", "paid"}] * 2
    assert [(m["nickname"], m["avatar_url"]) for m in body["members"]] == [
        (leader.nickname, "https://a/l.png"), (friend.nickname, "https://a/f.png")]
    for person in (leader, friend):
        for secret in (person.openid, person.referral_code, person.phone_masked):
            if secret:
                assert secret not in view.text, secret
    for order in orders:
        assert order.out_trade_no not in view.text
    assert "order_id" not in view.text and "paid_fen" not in view.text and "total_fen" not in view.text
    # Reading the view changed nothing of the members' orders.
    assert [(o.status, o.paid_fen) for o in [await Order.get(id=o.id) for o in orders]] == [
        (o.status, o.paid_fen) for o in orders]


# ============================================================== one customer's world, seen by everyone


def _forget_cached_loggers() -> None:
    # Module-level structlog proxies keep the logger (and so the level) bound on first use.
    for module in list(sys.modules.values()):
        try:
            values = list(vars(module).values())
        except TypeError:
            continue
        for value in values:
            if isinstance(value, BoundLoggerLazyProxy):
                value.__dict__.pop("bind", None)


@contextlib.contextmanager
def all_logs(level: str = "DEBUG") -> Iterator[io.StringIO]:
    """Every log line the app writes (structlog to stderr and std logging), at DEBUG, into one buffer.
    The ORM's own loggers keep the level production gives them (configure_logging)."""
    settings = get_settings().app
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    root = logging.getLogger()
    old_level, old_stderr = root.level, sys.stderr
    configure_logging(msgspec.structs.replace(settings, log_level=level))
    _forget_cached_loggers()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    sys.stderr = buffer
    try:
        yield buffer
    finally:
        sys.stderr = old_stderr
        root.removeHandler(handler)
        root.setLevel(old_level)
        configure_logging(settings)
        _forget_cached_loggers()


@dataclass
class World:
    owner: Customer
    other: Customer
    phone: str
    session_key: str
    triage_secret: str
    ids: dict[str, Any]
    markers: dict[str, str]  # the owner's values that identify them or their objects
    friend_nickname: str  # a friend the owner referred: the owner sees them masked only
    logs: str


@pytest.fixture(scope="module")
async def world(client, redis) -> World:
    """Customer A logs in, binds a phone, checks in, answers a triage form, books, redeems, opens a group
    and has a friend; everything the app logs meanwhile is kept."""
    name = "iso-owner-" + secrets.token_hex(4)
    phone = "138" + str(secrets.randbelow(10**8)).zfill(8)
    secret = "iso-triage-" + secrets.token_hex(8)
    tag = secrets.token_hex(3)
    department = await make_department(concerns=[f"acne-{tag}", f"pores-{tag}"])
    slot = await make_slot(department=department)
    item = await make_item(points_price=100, stock_total=10)
    campaign, sku = await make_campaign(CampaignKind.bestie_card)
    front_desk = await make_staff(*ALL_ROLES)
    with all_logs() as captured:
        login = await client.post("/app/auth/login", json={"code": f"sandbox:{name}"})
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        assert (await client.patch("/app/me", headers=headers, json={"nickname": "Iso " + tag})).status_code == 200
        bound = await client.post("/app/me/phone", headers=headers, json={"code": f"sandbox:{phone}"})
        assert bound.status_code == 200 and bound.json()["phone"] == crypto.mask_phone(phone), bound.text
        assert (await client.post("/app/check-ins", headers=headers)).status_code == 201
        triage = await client.post("/app/triage", headers=headers, json={
            "department_id": department.id, "concerns": [f"acne-{tag}"],
            "answers": {**NO, "anticoagulants": True, "notes": secret}})
        assert triage.status_code == 201, triage.text
        booking = await client.post("/app/bookings", headers=headers,
                                    json={"slot_id": slot.id, "triage_id": triage.json()["id"]})
        assert booking.status_code == 201, booking.text
        owner = await Customer.get(id=login.json()["customer_id"])
        await give_points_to(owner, 500)
        redemption = await client.post("/app/mall/redemptions", headers={**headers, "Idempotency-Key": _key()},
                                       json={"item_id": item.id, "quantity": 1})
        assert redemption.status_code == 201, redemption.text
        group = await client.post("/app/groups", headers=headers, json={"campaign_id": campaign.id, "sku_id": sku.id})
        assert group.status_code == 201, group.text
        order = await Order.get(id=group.json()["order_id"])
        paid = await client.post(f"/sandbox/payments/{order.out_trade_no}/succeed", headers=headers)
        assert paid.status_code == 200, paid.text
        await run_jobs(redis)  # the paid order's job opens the group (payment events, vouchers...)
        # The front desk's day: the queue and the customer's history show the answers (audited).
        day = booking.json()["local_date"]
        queue = await client.get("/admin/bookings", params={"date": day}, headers=staff_headers(front_desk))
        assert queue.status_code == 200 and secret in queue.text
        history = await client.get(f"/admin/customers/{owner.id}", headers=staff_headers(front_desk))
        assert history.status_code == 200 and secret in history.text
    program = await make_program(exclusive=False, is_active=False)
    friend = await make_customer(nickname="Friend " + tag)
    now = clock.now()
    await ReferralBinding.create(program=program, referee=friend, referrer=owner, code=owner.referral_code,
                                 status=BindingStatus.bound, bound_at=now, expires_at=now + timedelta(days=30),
                                 qualify_until=now + timedelta(days=30))
    other = await make_customer()
    voucher = redemption.json()["vouchers"][0]
    return World(
        owner=owner, other=other, phone=phone, session_key=_sandbox_session_key(name), triage_secret=secret,
        ids={
            "customer_id": owner.id, "booking_id": booking.json()["id"], "triage_id": triage.json()["id"],
            "order_id": order.id, "out_trade_no": order.out_trade_no, "voucher_id": voucher["id"],
            "code": voucher["code"], "redemption_id": redemption.json()["id"], "item_id": item.id,
            "group_id": group.json()["group_id"], "campaign_id": campaign.id, "department_id": department.id,
            "branch_id": slot.branch_id, "date": slot.local_date.isoformat(), "referrer_id": owner.id,
            "beneficiary_id": owner.id,
        },
        markers={
            "nickname": owner.nickname, "openid": owner.openid, "phone_masked": owner.phone_masked,
            "referral_code": owner.referral_code, "voucher_code": voucher["code"],
            "out_trade_no": order.out_trade_no, "triage": secret, "phone": phone,
        },
        friend_nickname=friend.nickname,
        logs=captured.getvalue(),
    )


def _sandbox_session_key(name: str) -> str:
    import hashlib

    return hashlib.sha256(name.encode()).hexdigest()[24:48]


def _fill(path: str, ids: dict[str, Any]) -> str:
    return re.sub(r"\{([^}:]+)(:[a-z]+)?\}", lambda m: str(ids.get(m.group(1), MISSING)), path)


def _query(operation: dict, ids: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for p in operation.get("parameters", []):
        if p["in"] != "query":
            continue
        if p["name"] == "limit":
            params["limit"] = 200
        elif p["name"] in ids:
            params[p["name"]] = ids[p["name"]]
    return params


async def _get_everything(app, client, prefixes: tuple[str, ...], headers: dict, ids: dict) -> dict[str, str]:
    """GET every route under `prefixes`, identifiers filled from `ids`; the body text per route."""
    seen = {}
    for method, path, operation in openapi_operations(app):
        if method != "GET" or not path.startswith(prefixes):
            continue
        r = await client.get(_fill(path, ids), params=_query(operation, ids), headers=headers)
        assert r.status_code < 500, (path, r.text)
        seen[path] = r.text
    return seen


async def test_live_wechat_login_and_phone_binding_log_no_secrets_even_at_debug(live_client, fake_wechat):
    """Through the live adapter (a real socket to the local fake): code2session, stable token,
    getuserphonenumber. The app secret, the session key, the access token and the phone stay out of logs."""
    from kernel.identity.models import Customer as CustomerRow

    phone = "136" + str(secrets.randbelow(10**8)).zfill(8)
    code = fake_wechat.issue_login_code()
    session_key = fake_wechat.login_codes[code]["session_key"]
    with all_logs() as captured:
        login = await live_client.post("/app/auth/login", json={"code": code})
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        bound = await live_client.post("/app/me/phone", headers=headers,
                                       json={"code": fake_wechat.issue_phone_code(phone)})
        assert bound.status_code == 200, bound.text
        again = await live_client.post("/app/me/phone", headers=headers, json={"code": "phone-never-issued"})
        assert again.status_code == 401
    logs = captured.getvalue()
    assert "/app/me/phone" in logs  # the capture worked
    customer = await CustomerRow.get(id=login.json()["customer_id"])
    for secret in (phone, session_key, fake_wechat.secret, *fake_wechat.access_tokens, customer.openid):
        assert secret not in logs, secret
    for text in (login.text, bound.text, again.text):
        assert phone not in text and session_key not in text


def test_logs_of_login_phone_triage_booking_and_staff_views_hold_no_phone_or_answers(world):
    # The capture worked: the access log saw the phone binding and the staff's views.
    assert "/app/me/phone" in world.logs and "/admin/customers/" in world.logs
    for secret in (world.phone, world.triage_secret, world.session_key, f"sandbox:{world.phone}"):
        assert secret not in world.logs, secret


async def test_another_customer_sees_nothing_of_a_customers_world(app, client, world):
    """Every customer GET (lists, views, exports), as B, with A's identifiers: none of A's data."""
    with all_logs() as captured:
        seen = await _get_everything(app, client, ("/app/", "/sandbox/"), customer_headers(world.other), world.ids)
    # The shareable group view shows the leader's nickname, on purpose (and only that).
    allowed = {"/app/groups/{group_id}": {"nickname"}}
    for path, text in seen.items():
        for what, marker in world.markers.items():
            if what not in allowed.get(path, set()):
                assert marker not in text, (path, what)
    assert world.triage_secret not in captured.getvalue() and world.phone not in captured.getvalue()


# Where health answers may be shown: to the customer who gave them, and to the front desk.
TRIAGE_SHOWN_TO_OWNER = {"/app/triage/{triage_id}", "/app/me/data-export"}
TRIAGE_SHOWN_TO_STAFF = {"/admin/bookings", "/admin/customers/{customer_id}"}


async def test_phone_never_in_full_and_answers_only_where_needed(app, client, world):
    staff = await make_staff(*ALL_ROLES)
    with all_logs() as captured:
        mine = await _get_everything(app, client, ("/app/", "/sandbox/"), customer_headers(world.owner), world.ids)
        theirs = await _get_everything(app, client, ("/admin/",), staff_headers(staff), world.ids)
        # Roles that have no use for health answers never see them, on any route.
        for role in ("campaign", "finance"):
            seen = await _get_everything(app, client, ("/admin/",), staff_headers(await make_staff(role)), world.ids)
            assert not [path for path, text in seen.items() if world.triage_secret in text], role
    for audience, seen, shown in (("customer", mine, TRIAGE_SHOWN_TO_OWNER), ("staff", theirs, TRIAGE_SHOWN_TO_STAFF)):
        for path, text in seen.items():
            assert world.phone not in text, (audience, path)
            assert world.session_key not in text, (audience, path)
            assert (world.triage_secret in text) == (path in shown), (audience, path)
            # The WeChat identity stays with us; friends the customer referred are shown masked.
            assert world.markers["openid"] not in text, (audience, path)
            if audience == "customer":
                assert world.friend_nickname not in text, path
    assert "\"F**\"" in mine["/app/referrals"]  # the friend is listed (masked), so the check above means something
    # Where a phone is shown, it is the masked one.
    assert world.markers["phone_masked"] in mine["/app/me"]
    assert world.markers["phone_masked"] in theirs["/admin/customers/{customer_id}"]
    assert world.markers["phone_masked"] in theirs["/admin/vouchers/{code}"]
    logs = captured.getvalue()
    assert "/admin/customers/" in logs
    assert world.phone not in logs and world.triage_secret not in logs


async def test_phone_and_answers_are_not_in_clear_anywhere_in_the_database_or_redis(world, redis):
    """Every text column of every table, read raw from MariaDB; every Redis value of the run."""
    conn = await aiomysql.connect(host=conftest.MYSQL_HOST, port=conftest.MYSQL_PORT, user=conftest.MYSQL_USER,
                                  password=conftest.MYSQL_PASSWORD, db=conftest.TEST_DATABASE, autocommit=True)
    secrets_ = {"phone": world.phone, "triage": world.triage_secret, "session_key": world.session_key}
    try:
        async with conn.cursor() as cur:
            await cur.execute(
                "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = %s "
                "AND data_type IN ('char','varchar','tinytext','text','mediumtext','longtext','json',"
                "'blob','mediumblob','longblob','varbinary','binary')", (conftest.TEST_DATABASE,))
            columns: dict[str, list[str]] = {}
            for table, column in await cur.fetchall():
                columns.setdefault(table, []).append(column)
            assert "booking_triage_submission" in columns and "customer" in columns and len(columns) > 30
            found = []
            for table, cols in columns.items():
                for what, value in secrets_.items():
                    where = " OR ".join(f"`{c}` LIKE %s" for c in cols)
                    await cur.execute(f"SELECT COUNT(*) FROM `{table}` WHERE {where}", [f"%{value}%"] * len(cols))
                    if (await cur.fetchone())[0]:
                        found.append((table, what))
            assert not found, f"in clear at rest: {found}"
            # The answers are there, sealed: the raw column decrypts to them with the app's key.
            await cur.execute("SELECT answers_sealed FROM booking_triage_submission WHERE id = %s",
                              (world.ids["triage_id"],))
            (sealed,) = await cur.fetchone()
            await cur.execute("SELECT phone_sealed, phone_masked FROM customer WHERE id = %s", (world.owner.id,))
            phone_sealed, phone_masked = await cur.fetchone()
    finally:
        conn.close()
    assert sealed.startswith("v1:") and world.triage_secret in crypto.unseal(sealed)
    assert crypto.unseal(phone_sealed) == world.phone and phone_masked == crypto.mask_phone(world.phone)

    leaked = []
    async for key in redis.scan_iter(count=500):
        kind = (await redis.type(key)).decode()
        if kind == "string":
            values = [await redis.get(key)]
        elif kind == "hash":
            values = list((await redis.hgetall(key)).values())
        elif kind == "zset":
            values = await redis.zrange(key, 0, -1)
        elif kind == "list":
            values = await redis.lrange(key, 0, -1)
        else:
            values = []
        for value in values:
            for what, secret in secrets_.items():
                if value and secret.encode() in value:
                    leaked.append((key, what))
    assert not leaked, leaked
