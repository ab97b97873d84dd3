"""The OpenAPI document tells the truth: who needs a token, what media type comes back, which methods a path
has, which bodies refuse unknown fields, integer bounds, what input is accepted, and how the main flows chain."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from kernel import clock
from tests.factories import customer_headers, make_customer, make_staff, staff_headers

METHODS = ("get", "post", "put", "patch", "delete")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture
async def document(client):
    r = await client.get("/schema/openapi.json")
    assert r.status_code == 200
    return r


def operations(doc):
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


async def test_a_token_is_documented_exactly_where_one_is_asked_for(client, document):
    doc = document.json()
    assert not doc.get("security"), "a document-wide requirement puts a token on login and health"
    open_routes = {("/app/auth/login", "post"), ("/admin/auth/login", "post"), ("/health/live", "get"),
                   ("/health/ready", "get"), ("/payments/wechat/notify", "post"),
                   ("/payments/wechat/refund-notify", "post")}
    for path, method, op in operations(doc):
        if (path, method) in open_routes:
            assert not op.get("security"), (method, path)
        elif path.startswith(("/app/", "/admin/")):
            assert op.get("security") == [{"BearerToken": []}], (method, path)
    # And the document's word holds: every route it marks as needing a token refuses a request without one.
    for path, method, op in operations(doc):
        if op.get("security") and "{" not in path:
            r = await client.request(method.upper(), path)
            assert r.status_code == 401, (method, path, r.status_code)


async def test_exports_document_their_media_type(document):
    doc = document.json()
    assert set(doc["paths"]["/admin/mall/redemptions/export"]["get"]["responses"]["200"]["content"]) == {"text/csv"}
    assert set(doc["paths"]["/admin/orders/export.csv"]["get"]["responses"]["200"]["content"]) == {"text/csv"}
    assert set(doc["paths"]["/admin/settlements/{batch_id}/export"]["get"]["responses"]["200"]["content"]) == {
        "text/csv", XLSX}
    for path, method, op in operations(doc):
        for status, response in op["responses"].items():
            for media_type in response.get("content", {}):
                assert re.fullmatch(r"[a-z]+/[a-z0-9.+-]+", media_type), (method, path, status, media_type)


async def test_exports_send_charset_once(client):
    from tests.campaigns.referrals.test_settlement import payable_reward, today

    finance = await make_staff("finance")
    orders = await client.get("/admin/orders/export.csv", headers=staff_headers(finance))
    assert orders.status_code == 200
    assert orders.headers["content-type"] == "text/csv; charset=utf-8"
    await payable_reward(await make_customer(), 1_500)
    batch = await client.post("/admin/settlements", json={"up_to": today()}, headers=staff_headers(finance))
    assert batch.status_code == 201, batch.text
    url = f"/admin/settlements/{batch.json()['id']}/export"
    csv_export = await client.get(url, headers=staff_headers(finance))
    assert csv_export.headers["content-type"] == "text/csv; charset=utf-8"
    xlsx_export = await client.get(url, params={"format": "xlsx"}, headers=staff_headers(finance))
    assert xlsx_export.headers["content-type"] == XLSX


async def test_options_lists_every_documented_method_without_a_token(client, document):
    doc = document.json()
    checked = 0
    for path, item in doc["paths"].items():
        url = path.replace("{code}", "ABCD").replace("{out_trade_no}", "X1").replace("{occasion}", "birthday")
        url = re.sub(r"\{[a-z_]+_id\}", "1", url)  # every id parameter, whichever room added the route
        assert "{" not in url, path
        r = await client.options(url)
        assert r.status_code == 204, (path, r.status_code)
        allowed = {m.strip() for m in r.headers["allow"].split(",")}
        assert allowed == {m.upper() for m in item if m in METHODS} | {"OPTIONS"}, (path, allowed)
        checked += 1
    assert checked > 50


async def test_bodies_that_refuse_unknown_fields_say_so(client, document):
    from booking.schemas import Question, QuestionnaireIn
    from booking.visit_schemas import BookingCreate
    from kernel.identity.schemas import CustomerLogin

    schemas = document.json()["components"]["schemas"]
    for struct in (BookingCreate, Question, QuestionnaireIn, CustomerLogin):
        assert struct.__struct_config__.forbid_unknown_fields
        assert schemas[struct.__name__].get("additionalProperties") is False, struct.__name__
    # The document says closed, and the route is closed.
    r = await client.post("/app/auth/login", json={"code": "sandbox:x", "extra": 1})
    assert r.status_code == 400


async def test_the_int64_maximum_is_written_as_an_integer(document):
    assert "9.223372036854776e+18" not in document.text
    slot_id = document.json()["components"]["schemas"]["BookingCreate"]["properties"]["slot_id"]
    assert slot_id["maximum"] == 2**63 - 1 and isinstance(slot_id["maximum"], int)
    for path, method, op in operations(document.json()):
        for param in op.get("parameters", []):
            for bound in ("maximum", "minimum"):
                if param["schema"].get("type") == "integer" and bound in param["schema"]:
                    assert isinstance(param["schema"][bound], int), (method, path, param["name"])


async def test_a_datetime_query_value_must_be_iso_8601(client):
    staff = await make_staff("campaign")
    for value in ("0.5", "0", "1700000000"):
        r = await client.get("/admin/mall/redemptions", params={"created_to": value}, headers=staff_headers(staff))
        assert r.status_code == 400, (value, r.text)
        assert r.json()["detail"]["field"] == "created_to"
    ok = await client.get("/admin/mall/redemptions", params={"created_to": "2026-01-01T00:00:00+08:00"},
                          headers=staff_headers(staff))
    assert ok.status_code == 200, ok.text


async def test_a_boolean_query_value_must_be_true_or_false(client):
    staff = await make_staff("campaign")
    for value in ("1", "0", "yes"):
        r = await client.get("/admin/mall/items", params={"include_archived": value}, headers=staff_headers(staff))
        assert r.status_code == 400, (value, r.text)
        assert r.json()["detail"]["field"] == "include_archived"
    assert (await client.get("/admin/mall/items", params={"include_archived": "true"},
                             headers=staff_headers(staff))).status_code == 200


@pytest.mark.parametrize(("body", "field"), [
    ({"slot_id": "1"}, "slot_id"),                    # a string for an integer
    ({"slot_id": 1.0}, "slot_id"),                    # a float for an integer
    ({"slot_id": 999_999_999, "remind": 1}, "remind"),  # 0/1 for a boolean
])
async def test_body_values_must_have_the_documented_type(client, body, field):
    customer = await make_customer()
    r = await client.post("/app/bookings", json=body, headers=customer_headers(customer))
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "validation_error" and r.json()["detail"]["field"] == field


async def test_a_datetime_in_a_body_must_be_iso_8601(client):
    from campaigns.groupbuy.models import Campaign

    staff = await make_staff("campaign")
    now = clock.now()
    body = {"kind": "bestie_card", "title": "闺蜜卡 strict", "starts_at": 0,
            "ends_at": (now + timedelta(days=3)).isoformat(), "group_size": 3, "time_limit_minutes": 120,
            "skus": [{"title": "水光针", "original_price_fen": 98_000, "group_price_fen": 49_900, "stock": 30}]}
    before = await Campaign.all().count()
    r = await client.post("/admin/campaigns", json=body, headers=staff_headers(staff))
    assert r.status_code == 400, r.text
    assert r.json()["detail"]["field"] == "starts_at"
    nested = {**body, "starts_at": (now + timedelta(hours=1)).isoformat(),
              "skus": [{**body["skus"][0], "stock": "30"}]}
    r = await client.post("/admin/campaigns", json=nested, headers=staff_headers(staff))
    assert r.status_code == 400, r.text
    assert r.json()["detail"]["field"] == "skus.0.stock"
    assert await Campaign.all().count() == before


async def test_the_main_flows_are_linked(document):
    doc = document.json()
    ids = {op["operationId"]: (method, path) for path, method, op in operations(doc)}

    def linked(path, method, status):
        links = doc["paths"][path][method]["responses"][status].get("links") or {}
        return {ids[link["operationId"]] for link in links.values()}

    assert ("get", "/app/bookings") in linked("/app/auth/login", "post", "200")
    assert ("post", "/app/bookings") in linked("/app/booking/slots", "get", "200")
    assert ("post", "/app/bookings/{booking_id}/cancel") in linked("/app/bookings", "post", "201")
    assert ("post", "/app/orders/{order_id}/pay") in linked("/app/campaigns/{campaign_id}/purchases", "post", "201")
    assert ("get", "/app/orders/{order_id}") in linked("/app/orders/{order_id}/pay", "post", "200")
    assert ("post", "/app/groups/{group_id}/join") in linked("/app/groups", "post", "201")
    assert ("post", "/app/vouchers/{voucher_id}/cancel") in linked("/app/mall/redemptions", "post", "201")
    assert ("post", "/admin/vouchers/{code}/redeem") in linked("/app/mall/redemptions", "post", "201")


async def test_a_retried_redemption_answers_a_documented_status(document):
    """Found by the stateful phase: a retry with the same Idempotency-Key answers 200, which was undocumented
    (and the 201 had no schema)."""
    responses = document.json()["paths"]["/app/mall/redemptions"]["post"]["responses"]
    for status in ("200", "201"):
        assert responses[status]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/RedemptionView"}, status
