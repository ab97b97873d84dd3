"""The PIPL export holds everything we keep about the customer: every table with a customer column is
declared by a room's privacy module, and the export lists each of the customer's rows of it."""

from __future__ import annotations

import pytest
from tortoise import Tortoise
from tortoise.fields.relational import ForeignKeyFieldInstance, OneToOneFieldInstance

import rooms
from campaigns.groupbuy.models import CampaignKind
from kernel.db import transaction
from points_mall.checkin import check_in
from tests.campaigns.groupbuy_factories import make_campaign, pay
from tests.factories import customer_headers, make_customer
from tests.orders.factories import discard_future_jobs, run_jobs

# Plain id columns that name a customer (the rooms keep no foreign key across Tortoise apps).
CUSTOMER_ID_COLUMNS = {"customer_id", "leader_id", "referrer_id", "referee_id", "beneficiary_id", "payee_id"}


def customer_columns() -> set[tuple[type, str]]:
    """Every (model, column) in the schema that holds a customer id, the customer table itself aside."""
    found: set[tuple[type, str]] = set()
    for app, models in Tortoise.apps.items():
        for model in models.values():
            if model.__name__ == "Customer" and app == "kernel":
                continue
            for name, field in model._meta.fields_map.items():
                if isinstance(field, (ForeignKeyFieldInstance, OneToOneFieldInstance)):
                    if field.related_model.__name__ == "Customer":
                        found.add((model, field.source_field or f"{name}_id"))
                elif name in CUSTOMER_ID_COLUMNS:
                    found.add((model, name))
    return found


def declared() -> dict[tuple[type, str], tuple[str, str]]:
    return {(model, column): (room, key) for room, module in rooms.PRIVACY_ROOMS.items()
            for model, column, key in module.TABLES}


def test_every_table_with_a_customer_column_is_declared_by_a_privacy_module():
    columns = customer_columns()
    assert ("Order", "customer_id") in {(m.__name__, c) for m, c in columns}  # the walk sees every app
    missing = sorted(f"{m._meta.db_table}.{c}" for m, c in columns - set(declared()))
    assert not missing, f"tables with a customer column that the PIPL export leaves out: {missing}"
    stale = sorted(f"{m._meta.db_table}.{c}" for m, c in set(declared()) - columns)
    assert not stale, f"privacy modules declare columns that hold no customer: {stale}"


def _exported_rows(value) -> int:
    if value is None:
        return 0
    return len(value) if isinstance(value, list) else 1


@pytest.fixture
async def no_deferred_leftovers(redis):
    """The orders' payment windows and the group's deadline are deferred jobs; later burst workers would wait."""
    yield
    await run_jobs(redis)  # the group's deadline job is scheduled by a job of its own
    await discard_future_jobs(redis)


async def test_export_lists_every_row_of_every_customer_table(client, no_deferred_leftovers):
    """A customer who bought, joined a group, led one and checked in: each of their rows, table by table.

    Before: the export named a privacy module that did not exist and skipped it, so orders, payments
    and group-buy entries were missing."""
    customer = await make_customer()
    headers = customer_headers(customer)
    bestie, bestie_sku = await make_campaign(CampaignKind.bestie_card)
    opened = await client.post("/app/groups", headers=headers, json={"campaign_id": bestie.id, "sku_id": bestie_sku.id})
    assert opened.status_code == 201, opened.text
    await pay(opened.json()["order_id"])
    category, sku = await make_campaign(CampaignKind.category)
    bought = await client.post(f"/app/campaigns/{category.id}/purchases", headers=headers,
                               json={"sku_id": sku.id, "quantity": 1})
    assert bought.status_code == 201, bought.text
    await pay(bought.json()["order_id"])
    async with transaction() as conn:
        await check_in(conn, customer.id)

    response = await client.get("/app/me/data-export", headers=headers)
    assert response.status_code == 200
    exported = response.json()
    walked = 0
    for (model, column), (room, key) in declared().items():
        kept = await model.filter(**{column: customer.id}).count()
        assert _exported_rows(exported[room][key]) == kept, f"{model._meta.db_table}.{column} → {room}.{key}"
        walked += kept > 0
    assert walked >= 8  # orders, entries, groups, quotas, consumptions, ledger, vouchers, check-ins...
    orders = exported["orders"]["orders"]
    assert len(orders) == 2 and all(o["payments"] and o["lines"] for o in orders)
    assert {o["payments"][0]["outcome"] for o in orders} == {"applied"}
