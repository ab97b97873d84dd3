"""Staff edit a campaign's items the way the console does: an item sent back with its stock unchanged is saved,
and stock never drops below what buyers have taken (sold or held)."""

from __future__ import annotations

from datetime import timedelta

from campaigns.groupbuy import groups
from campaigns.groupbuy.models import Campaign, CampaignSku
from kernel import clock
from kernel.db import transaction
from tests.campaigns.groupbuy_factories import make_campaign
from tests.factories import make_customer, make_staff, staff_headers

def as_the_editor_sends(item: dict) -> dict:
    return {"title": item["title"], "original_price_fen": item["original_price_fen"],
            "group_price_fen": item["group_price_fen"], "stock": item["stock_total"], "tiers": item["tiers"]}


async def draft_campaign(client, h) -> dict:
    now = clock.now()
    created = await client.post("/admin/campaigns", headers=h, json={
        "kind": "bestie_card", "title": "闺蜜卡 水光", "starts_at": (now + timedelta(hours=1)).isoformat(),
        "ends_at": (now + timedelta(days=3)).isoformat(), "group_size": 3, "time_limit_minutes": 120,
        "skus": [{"title": "水光针", "original_price_fen": 98_000, "group_price_fen": 49_900, "stock": 30}]})
    assert created.status_code == 201, created.text
    return created.json()


async def running_campaign_with_two_units_held() -> tuple[Campaign, CampaignSku]:
    """Stock 5, two leaders' seats held (unpaid orders): 3 left, 2 taken."""
    campaign, sku = await make_campaign(stock=5)
    async with transaction() as conn:
        for _ in range(2):
            await groups.open_group(conn, (await make_customer()).id, campaign.id, sku.id)
    return campaign, sku


async def stored(campaign_id: int, sku_id: int) -> tuple[Campaign, CampaignSku]:
    return await Campaign.get(id=campaign_id), await CampaignSku.get(id=sku_id)


# --- the item's own route (PATCH /admin/campaigns/{id}/skus/{sku_id}) ---------------------------------------

async def test_an_item_sent_back_with_its_stock_unchanged_is_saved(client):
    # MariaDB reports rows changed, not rows matched: the stock statement changes nothing here, and this
    # was refused as "Stock cannot go below what is already sold or held".
    h = staff_headers(await make_staff("campaign"))
    campaign = await draft_campaign(client, h)
    item = campaign["skus"][0]
    r = await client.patch(f"/admin/campaigns/{campaign['id']}/skus/{item['id']}", json=as_the_editor_sends(item),
                           headers=h)
    assert r.status_code == 200, r.text
    assert (r.json()["stock_total"], r.json()["stock_left"], r.json()["group_price_fen"]) == (30, 30, 49_900)


async def test_a_running_items_stock_kept_raised_or_lowered_below_what_is_taken(client):
    h = staff_headers(await make_staff("campaign"))
    campaign, sku = await running_campaign_with_two_units_held()
    url = f"/admin/campaigns/{campaign.id}/skus/{sku.id}"

    same = await client.patch(url, json={"stock": 5}, headers=h)
    assert same.status_code == 200, same.text
    assert (same.json()["stock_total"], same.json()["stock_left"]) == (5, 3)

    low = await client.patch(url, json={"stock": 1}, headers=h)
    assert low.status_code == 422 and low.json()["code"] == "validation_failed", low.text
    assert low.json()["detail"] == {"field": "stock", "taken": 2}
    _, item = await stored(campaign.id, sku.id)
    assert (item.stock_total, item.stock_left) == (5, 3)

    raised = await client.patch(url, json={"stock": 8}, headers=h)
    assert raised.status_code == 200, raised.text
    assert (raised.json()["stock_total"], raised.json()["stock_left"]) == (8, 6)
