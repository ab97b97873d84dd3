"""Bad input of every kind gets a clear 4xx in the one error format, and changes nothing."""

from __future__ import annotations

import pytest

from kernel.identity.models import Customer
from tests.factories import customer_headers, make_customer


def assert_error_format(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message", "detail"}, body
    assert isinstance(body["code"], str) and body["code"] and isinstance(body["message"], str)
    if code:
        assert body["code"] == code, body
    return body


async def test_malformed_json(client):
    r = await client.post("/app/auth/login", content=b'{"code": ', headers={"content-type": "application/json"})
    assert_error_format(r, 400, "malformed_body")


async def test_wrong_type_names_the_field(client):
    r = await client.post("/app/auth/login", json={"code": 42})
    body = assert_error_format(r, 400, "validation_error")
    assert body["detail"]["field"] == "code"


async def test_missing_field(client):
    r = await client.post("/app/auth/login", json={})
    body = assert_error_format(r, 400, "validation_error")
    assert body["detail"]["field"] == "code"


async def test_unknown_field_is_refused(client):
    r = await client.post("/app/auth/login", json={"code": "sandbox:x", "admin": True})
    assert_error_format(r, 400, "validation_error")


async def test_unknown_enum_value_changes_nothing(client):
    customer = await make_customer(nickname="before")
    r = await client.patch(
        "/app/me", json={"nickname": "after", "gender": "other"}, headers=customer_headers(customer)
    )
    body = assert_error_format(r, 400)
    assert body["detail"]["field"] == "gender"
    assert (await Customer.get(id=customer.id)).nickname == "before"


async def test_oversized_body(client):
    r = await client.post(
        "/app/auth/login", content=b'{"code": "' + b"x" * 1_100_000 + b'"}', headers={"content-type": "application/json"}
    )
    assert_error_format(r, 413, "payload_too_large")


async def test_missing_token_and_unknown_route_and_method(client):
    assert_error_format(await client.get("/app/me"), 401, "token_missing")
    assert_error_format(await client.get("/no/such/route"), 404, "not_found")
    assert_error_format(await client.delete("/app/auth/login"), 405, "method_not_allowed")


@pytest.mark.parametrize("value", ["", "x" * 129])
async def test_length_limits(client, value):
    assert_error_format(await client.post("/app/auth/login", json={"code": value}), 400, "validation_error")


async def test_request_id_is_echoed(client):
    r = await client.get("/health/live", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = await client.get("/health/live", headers={"X-Request-ID": "bad id with spaces"})
    assert r.headers["x-request-id"] != "bad id with spaces" and len(r.headers["x-request-id"]) == 32


async def test_health(client):
    assert (await client.get("/health/live")).json() == {"status": "ok"}
    ready = await client.get("/health/ready")
    assert ready.status_code == 200, ready.text
    checks = ready.json()["checks"]
    assert checks["database"] == "ok" and checks["redis"] == "ok"
    assert set(checks) == {"database", "redis", "workers", "outbox"}
    assert ready.json()["adapters"] == {"wechat": "sandbox", "pay": "sandbox", "environment": "test"}


def test_an_overflow_anywhere_is_a_422_in_the_error_format():
    """msgspec accepts 0001-01-01T00:00+14:00, which overflows once turned into UTC. Rooms check their own
    date fields and name them; the handler is the net for any that slips through."""
    from datetime import datetime, timezone

    from api.errors import EXCEPTION_HANDLERS

    with pytest.raises(OverflowError) as caught:
        datetime.fromisoformat("0001-01-01T00:00:00+14:00").astimezone(timezone.utc)
    response = EXCEPTION_HANDLERS[OverflowError](None, caught.value)
    assert response.status_code == 422 and response.content["code"] == "value_out_of_range"


def test_a_value_tortoise_refuses_for_its_column_is_a_422_naming_the_field():
    from tortoise.exceptions import ValidationError

    from api.errors import EXCEPTION_HANDLERS

    refused = ValidationError("title: Length of 'xxx' 300 > 128")
    response = EXCEPTION_HANDLERS[ValidationError](None, refused)
    assert response.status_code == 422 and response.content["code"] == "validation_failed"
    assert response.content["detail"] == {"field": "title"}


@pytest.mark.parametrize("error", ["DoesNotExist", "MultipleObjectsReturned"])
def test_a_row_our_code_expected_is_a_500_not_a_database_outage(error):
    """Tortoise's DoesNotExist is an OperationalError: it answered 503 database_unavailable with Retry-After,
    so a bug (a row read that should have been there) looked like an outage to clients, probes and the
    attack checks, and told clients to retry into it."""
    import tortoise.exceptions

    from api.errors import EXCEPTION_HANDLERS

    exc = getattr(tortoise.exceptions, error)("Coupon")
    handler = next(EXCEPTION_HANDLERS[cls] for cls in type(exc).__mro__ if cls in EXCEPTION_HANDLERS)
    response = handler(None, exc)
    assert response.status_code == 500 and response.content["code"] == "internal_error"
