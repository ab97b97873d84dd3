"""Schemathesis against the app's own OpenAPI document, every route, with customer and staff tokens.

A real server process (uvicorn, the test MariaDB database) answers generated requests; the checks are:
no 5xx, responses match their declared schema and status codes, every 4xx/5xx body is the error format.
The number of examples per operation is bounded so the suite stays fast (SCHEMATHESIS_EXAMPLES).
"""

from __future__ import annotations

import os

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import TEST_DATABASE, _admin_sql
from tests.live_server import live_server_url

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "6"))


CONTRACT_DATABASE = f"{TEST_DATABASE}_contract"
ADMIN = {"username": "contract-admin", "password": "contract admin password"}


@pytest.fixture(scope="session")
async def contract_server(database, redis):
    """The server gets a database of its own: generated requests create tiers, items, staff... and must
    not change what other tests see."""
    await _admin_sql(f"CREATE DATABASE `{CONTRACT_DATABASE}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    try:
        async with live_server_url(
            DATABASE_URL=os.environ["DATABASE_URL"].rsplit("/", 1)[0] + f"/{CONTRACT_DATABASE}",
            BOOTSTRAP_ADMIN_USERNAME=ADMIN["username"],
            BOOTSTRAP_ADMIN_PASSWORD=ADMIN["password"],
        ) as base:
            yield base
    finally:
        await _admin_sql(f"DROP DATABASE IF EXISTS `{CONTRACT_DATABASE}`")


@pytest.fixture(scope="session")
async def contract_tokens(contract_server):
    async with httpx.AsyncClient(base_url=contract_server) as http:
        customer = (await http.post("/app/auth/login", json={"code": "sandbox:contract"})).json()
        staff = (await http.post("/admin/auth/login", json=ADMIN)).json()
    return {
        "customer": {"Authorization": f"Bearer {customer['access_token']}"},
        "staff": {"Authorization": f"Bearer {staff['access_token']}"},
    }


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
        if response.status_code >= 400 and not operation.path.startswith("/payments/wechat/"):
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
