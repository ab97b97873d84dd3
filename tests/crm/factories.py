"""Factories of the CRM tests: consumptions at given instants, tags, segments over a test's own population."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from crm import segments
from crm.models import Tag, TagKind
from kernel import clock
from kernel.db import transaction
from points_mall.models import Consumption, ConsumptionSource


async def make_consumption(customer_id: int, amount_fen: int, occurred_at: datetime, *, refunded_fen: int = 0,
                           **overrides: Any) -> Consumption:
    ref = "test-" + secrets.token_hex(8)
    fields: dict[str, Any] = dict(
        customer_id=customer_id, amount_fen=amount_fen, refunded_fen=refunded_fen, source=ConsumptionSource.front_desk,
        external_ref=ref, points_ref="consumption:" + ref, occurred_at=occurred_at,
    )
    fields.update(overrides)
    return await Consumption.create(**fields)


async def make_tag(kind: TagKind = TagKind.manual, **overrides: Any) -> Tag:
    code = overrides.pop("code", f"test:{secrets.token_hex(5)}")
    fields: dict[str, Any] = dict(code=code, name=code, category="test", kind=kind, created_at=clock.now())
    fields.update(overrides)
    return await Tag.create(**fields)


async def make_segment(rules: dict[str, Any], name: str = "test segment"):
    async with transaction() as conn:
        return await segments.create_segment(conn, name=name, description="", rules=rules, staff_id=None)


def only(tag_id: int) -> list[dict[str, Any]]:
    """A rule group that keeps a test's own population (the suite's database holds everyone's customers)."""
    return [{"field": "tag", "op": "in", "value": [tag_id]}]
