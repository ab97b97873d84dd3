"""Production's JSON log lines: one JSON object per line, whatever a line carries, and the access line's fields."""

from __future__ import annotations

import io
import json
import sys
from datetime import datetime, timezone

import msgspec
import structlog

from api.logging import configure_logging
from kernel.settings import get_settings
from tests.api.test_isolation import _forget_cached_loggers
from tests.factories import customer_headers, make_customer


async def test_every_line_is_one_json_object_with_the_access_fields(client):
    settings = get_settings().app
    buffer, old_stderr = io.StringIO(), sys.stderr
    configure_logging(msgspec.structs.replace(settings, log_json=True, log_level="INFO"))
    _forget_cached_loggers()  # the access log's proxy keeps the configuration of its first use
    sys.stderr = buffer
    try:
        structlog.get_logger("test").info("odd values", error=ValueError("boom"), things={"a", "b"},
                                          at=datetime(2026, 12, 5, tzinfo=timezone.utc), thing=object())
        customer = await make_customer()
        assert (await client.get("/app/points", headers=customer_headers(customer))).status_code == 200
    finally:
        sys.stderr = old_stderr
        configure_logging(settings)
        _forget_cached_loggers()
    lines = [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]
    odd = next(line for line in lines if line["event"] == "odd values")
    assert odd["error"] == "ValueError('boom')" and odd["at"].startswith("2026-12-05T00:00:00")
    assert sorted(odd["things"]) == ["a", "b"] and odd["thing"].startswith("<object object")
    access = next(line for line in lines if line["event"] == "request" and line["path"] == "/app/points")
    assert access["method"] == "GET" and access["status"] == 200 and access["level"] == "info"
    assert access["request_id"] and access["timestamp"].endswith("Z") and isinstance(access["ms"], float)
