"""Schemathesis against the app's own OpenAPI document, every route, with customer and staff tokens.

A real server process (uvicorn, the test MariaDB database) answers generated requests; the checks are:
no 5xx, responses match their declared schema and status codes, every 4xx/5xx body is the error format.
The number of examples per operation is bounded so the suite stays fast (SCHEMATHESIS_EXAMPLES).
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.factories import customer_headers, make_customer, make_staff, staff_headers
from tests.live_server import live_server_url

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "6"))


@pytest.fixture(scope="session")
async def contract_server(database, redis):
    async with live_server_url() as base:
        yield base


@pytest.fixture(scope="session")
async def contract_tokens(contract_server):
    customer = await make_customer(nickname="contract")
    admin = await make_staff("admin")
    return {"customer": customer_headers(customer), "staff": staff_headers(admin)}


def _check_operation(operation, headers) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
              database=None)
    def run(case):
        response = case.call(headers=headers, timeout=30)
        case.validate_response(
            response,
            checks=(not_a_server_error, status_code_conformance, content_type_conformance,
                    response_schema_conformance),
        )
        if response.status_code >= 400:
            body = response.json()
            assert set(body) == {"code", "message", "detail"}, body

    run()


def test_every_route_honours_its_contract(contract_server, contract_tokens):
    schema = schemathesis.openapi.from_url(f"{contract_server}/schema/openapi.json")
    failures: list[str] = []
    checked = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        headers = contract_tokens["staff"] if operation.path.startswith("/admin") else contract_tokens["customer"]
        try:
            _check_operation(operation, headers)
        except Exception as exc:  # collect every failing operation, not just the first
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:800]}")
        checked += 1
    assert checked > 5
    assert not failures, "\n\n".join(failures)
