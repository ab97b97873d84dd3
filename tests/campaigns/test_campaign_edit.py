"""Staff edit a campaign and its items the way the console does: an item sent back with its stock unchanged is
saved, stock never drops below what buyers have taken (sold or held), a refused item leaves the campaign as
it was, and a running campaign sent back whole refuses only the locked fields whose value really changes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from campaigns.groupbuy import groups
from campaigns.groupbuy.models import Campaign, CampaignKind, CampaignSku
from kernel import clock
from kernel.db import transaction
from kernel.identity.models import AuditLogEntry
from tests.campaigns.groupbuy_factories import make_campaign
from tests.factories import make_customer, make_staff, staff_headers

# What the console's editor sends back for a campaign it opened (campaign.js, campaignBody): every field.
EDITABLE = ("title", "description", "starts_at", "ends_at", "group_size", "time_limit_minutes", "per_customer_limit",
            "new_customers_only", "virtual_min_paid", "leader_bonus_points", "voucher_valid_days")


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


# --- the campaign with its items, one request (PATCH /admin/campaigns/{id} with skus) -----------------------

async def test_the_editor_saves_a_new_title_with_every_item_sent_back_unchanged(client):
    h = staff_headers(await make_staff("campaign"))
    campaign = await draft_campaign(client, h)
    item = campaign["skus"][0]
    body = {**{k: campaign[k] for k in EDITABLE}, "title": "闺蜜卡 水光 三八节",
            "skus": [{"id": item["id"], **as_the_editor_sends(item)}]}
    r = await client.patch(f"/admin/campaigns/{campaign['id']}", json=body, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["title"] == "闺蜜卡 水光 三八节"
    assert r.json()["skus"] == campaign["skus"]  # the item is as it was
    saved, sku = await stored(campaign["id"], item["id"])
    assert saved.title == "闺蜜卡 水光 三八节" and (sku.stock_total, sku.stock_left) == (30, 30)


async def test_an_item_refused_leaves_the_campaign_as_it_was(client):
    staff = await make_staff("campaign")
    h = staff_headers(staff)
    campaign, sku = await running_campaign_with_two_units_held()
    ends_at = (clock.now() + timedelta(days=9)).isoformat()
    low = await client.patch(f"/admin/campaigns/{campaign.id}", headers=h, json={
        "title": "新标题", "ends_at": ends_at, "skus": [{"id": sku.id, "stock": 1}]})
    assert low.status_code == 422 and low.json()["code"] == "validation_failed", low.text
    assert low.json()["detail"] == {"field": "skus[0].stock", "taken": 2}
    saved, item = await stored(campaign.id, sku.id)
    assert (saved.title, saved.ends_at, saved.updated_at) == (campaign.title, campaign.ends_at, campaign.updated_at)
    assert (item.stock_total, item.stock_left) == (5, 3)
    assert not await AuditLogEntry.filter(staff_id=staff.id).exists()  # nothing happened, nothing audited

    kept = await client.patch(f"/admin/campaigns/{campaign.id}", headers=h, json={
        "title": "新标题", "ends_at": ends_at, "skus": [{"id": sku.id, "stock": 5}]})
    assert kept.status_code == 200, kept.text
    assert kept.json()["title"] == "新标题" and (kept.json()["skus"][0]["stock_total"],
                                                 kept.json()["skus"][0]["stock_left"]) == (5, 3)

    raised = await client.patch(f"/admin/campaigns/{campaign.id}", headers=h, json={
        "title": "新标题 加量", "skus": [{"id": sku.id, "stock": 9}]})
    assert raised.status_code == 200, raised.text
    assert (raised.json()["skus"][0]["stock_total"], raised.json()["skus"][0]["stock_left"]) == (9, 7)
    assert set(await AuditLogEntry.filter(staff_id=staff.id).values_list("action", flat=True)) == {
        "campaign.update", "campaign.update_sku"}


async def test_an_item_listed_twice_is_refused_and_nothing_changes(client):
    """Both entries would be applied and only the last one's changes audited: the first change left no record."""
    staff = await make_staff("campaign")
    h = staff_headers(staff)
    campaign, sku = await running_campaign_with_two_units_held()
    twice = await client.patch(f"/admin/campaigns/{campaign.id}", headers=h, json={
        "title": "新标题", "skus": [{"id": sku.id, "title": "改名"}, {"id": sku.id, "stock": 9}]})
    assert twice.status_code == 422 and twice.json()["code"] == "validation_failed", twice.text
    assert twice.json()["detail"]["field"] == "skus[1].id"
    saved, item = await stored(campaign.id, sku.id)
    assert (saved.title, item.title, item.stock_total) == (campaign.title, sku.title, 5)
    assert not await AuditLogEntry.filter(staff_id=staff.id).exists()


async def test_an_item_of_another_campaign_or_a_refused_price_change_rolls_the_edit_back(client):
    h = staff_headers(await make_staff("campaign"))
    campaign, sku = await running_campaign_with_two_units_held()
    _, foreign = await make_campaign()
    other = await client.patch(f"/admin/campaigns/{campaign.id}", headers=h, json={
        "title": "新标题", "skus": [{"id": sku.id, "stock": 6}, {"id": foreign.id, "stock": 1}]})
    assert other.status_code == 404 and other.json()["code"] == "sku_not_found", other.text
    price = await client.patch(f"/admin/campaigns/{campaign.id}", headers=h, json={
        "title": "新标题", "skus": [{"id": sku.id, "stock": 6, "group_price_fen": 1}]})
    assert price.status_code == 409 and price.json()["code"] == "live_campaign_change_refused", price.text
    assert price.json()["detail"]["field"] == "skus[0].group_price_fen"
    saved, item = await stored(campaign.id, sku.id)
    assert saved.title == campaign.title and (item.stock_total, item.stock_left) == (5, 3)


# --- a running campaign edited with the whole body the console sends back -------------------------------------

SHANGHAI = timezone(timedelta(hours=8))


def as_the_console_sends(instant: str) -> str:
    """An instant the way the editor sends it back: to the second (its picker has no fraction), in UTC, with
    milliseconds (JavaScript's toISOString)."""
    return datetime.fromisoformat(instant).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


async def the_editors_body(client, h, campaign_id: int, **changed) -> dict:
    """Every field and every item of the campaign as stored, as the console's editor sends them, then `changed`."""
    shown = (await client.get(f"/admin/campaigns/{campaign_id}", headers=h)).json()
    body = {k: shown[k] for k in EDITABLE}
    body.update(starts_at=as_the_console_sends(shown["starts_at"]), ends_at=as_the_console_sends(shown["ends_at"]))
    body["skus"] = [{"id": item["id"], **as_the_editor_sends(item)} for item in shown["skus"]]
    return {**body, **changed}


async def audited(staff_id: int) -> list[tuple[str, str, dict]]:
    return [(e.action, e.target_id, e.detail) for e in await AuditLogEntry.filter(staff_id=staff_id).order_by("id")]


async def test_a_running_campaign_sent_back_whole_with_a_new_title_and_end_is_saved(client):
    # The console sends every field: the locked ones (group size, time limit, start, leader points, new customers
    # only) as they are. They were counted as changes and refused (409 on group_size), so a live campaign could
    # not even be retitled from the console.
    staff = await make_staff("campaign")
    h = staff_headers(staff)
    campaign, sku = await running_campaign_with_two_units_held()
    assert campaign.starts_at.microsecond  # stored with a fraction of a second the console cannot send back
    ends_at = (campaign.ends_at + timedelta(days=2)).replace(microsecond=0)
    body = await the_editors_body(client, h, campaign.id, title="闺蜜卡 水光 延期",
                                  ends_at=ends_at.strftime("%Y-%m-%dT%H:%M:%S.000Z"))
    r = await client.patch(f"/admin/campaigns/{campaign.id}", json=body, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["title"] == "闺蜜卡 水光 延期"
    saved, item = await stored(campaign.id, sku.id)
    assert (saved.title, saved.ends_at) == ("闺蜜卡 水光 延期", ends_at)
    assert saved.updated_at > campaign.updated_at
    # Nothing else moved: the start keeps its microseconds, the item its price and stock.
    assert (saved.starts_at, saved.group_size, saved.time_limit_minutes, saved.new_customers_only) == (
        campaign.starts_at, campaign.group_size, campaign.time_limit_minutes, campaign.new_customers_only)
    assert (item.group_price_fen, item.original_price_fen, item.stock_total, item.stock_left) == (
        sku.group_price_fen, sku.original_price_fen, 5, 3)
    # The audit says what staff changed, not the body: no item row, no unchanged field.
    assert await audited(staff.id) == [
        ("campaign.update", str(campaign.id), {"title": "闺蜜卡 水光 延期", "ends_at": ends_at.isoformat()})]


async def test_a_running_campaigns_end_moves_earlier_while_it_stays_in_the_future(client):
    # What the console's hint for a live campaign says (campaign.js): the end is not only pushed later.
    h = staff_headers(await make_staff("campaign"))
    campaign, _ = await running_campaign_with_two_units_held()
    earlier = (clock.now() + timedelta(days=1)).replace(microsecond=0)
    assert earlier < campaign.ends_at
    url = f"/admin/campaigns/{campaign.id}"
    r = await client.patch(url, json={"ends_at": earlier.isoformat()}, headers=h)
    assert r.status_code == 200, r.text
    assert (await Campaign.get(id=campaign.id)).ends_at == earlier
    past = clock.now() - timedelta(minutes=1)
    r = await client.patch(url, json={"ends_at": past.isoformat()}, headers=h)
    assert (r.status_code, r.json()["detail"]["field"]) == (422, "ends_at"), r.text
    assert (await Campaign.get(id=campaign.id)).ends_at == earlier


async def test_a_running_campaign_refuses_only_the_locked_fields_really_changed(client):
    staff = await make_staff("campaign")
    h = staff_headers(staff)
    campaign, sku = await running_campaign_with_two_units_held()
    for changed, refused in (({"group_size": 4}, ["group_size"]),
                             ({"group_size": 4, "new_customers_only": True}, ["group_size", "new_customers_only"])):
        body = await the_editors_body(client, h, campaign.id, title="新标题", **changed)
        r = await client.patch(f"/admin/campaigns/{campaign.id}", json=body, headers=h)
        assert r.status_code == 409 and r.json()["code"] == "live_campaign_change_refused", r.text
        assert r.json()["detail"] == {"field": refused[0], "refused": refused}
    saved, item = await stored(campaign.id, sku.id)
    assert (saved.title, saved.group_size, saved.new_customers_only, saved.updated_at) == (
        campaign.title, 3, False, campaign.updated_at)
    assert (item.stock_total, item.stock_left) == (5, 3)
    assert await audited(staff.id) == []


async def test_an_instant_sent_in_another_offset_is_no_change_and_a_moved_one_is(client):
    staff = await make_staff("campaign")
    h = staff_headers(staff)
    campaign, _ = await make_campaign()
    url = f"/admin/campaigns/{campaign.id}"
    starts_in_shanghai = campaign.starts_at.astimezone(SHANGHAI)
    # The stored instant (UTC) sent as Shanghai's wall clock with +08:00, with and without its fraction.
    for starts_at in (starts_in_shanghai, starts_in_shanghai.replace(microsecond=0)):
        same = await client.patch(url, headers=h, json={
            "starts_at": starts_at.isoformat(), "ends_at": campaign.ends_at.astimezone(SHANGHAI).isoformat()})
        assert same.status_code == 200, same.text
    assert (await Campaign.get(id=campaign.id)).updated_at == campaign.updated_at  # nothing was written
    assert await audited(staff.id) == []

    moved = await client.patch(url, headers=h, json={
        "title": "新标题", "starts_at": (starts_in_shanghai - timedelta(minutes=1)).isoformat()})
    assert moved.status_code == 409 and moved.json()["detail"] == {"field": "starts_at", "refused": ["starts_at"]}
    naive = await client.patch(url, headers=h, json={"starts_at": starts_in_shanghai.replace(tzinfo=None).isoformat()})
    assert naive.status_code == 422 and naive.json()["detail"]["field"] == "starts_at", naive.text
    saved = await Campaign.get(id=campaign.id)
    assert (saved.title, saved.starts_at) == (campaign.title, campaign.starts_at)


async def test_a_live_items_unchanged_prices_are_no_change_and_a_changed_price_is_refused(client):
    staff = await make_staff("campaign")
    h = staff_headers(staff)
    # A tiered category group buy: time limit 0, group size 1, tiers on the item.
    campaign, sku = await make_campaign(CampaignKind.category, stock=20, tiers=[(10, 8_800), (20, 7_700)])
    item_url = f"/admin/campaigns/{campaign.id}/skus/{sku.id}"
    shown = (await client.get(f"/admin/campaigns/{campaign.id}", headers=h)).json()["skus"][0]

    # The item's own route: every field sent back, only the title new.
    same = await client.patch(item_url, headers=h, json={**as_the_editor_sends(shown), "title": "热玛吉 全脸"})
    assert same.status_code == 200, same.text
    # The campaign's route with the editor's whole body: nothing new at all.
    whole = await client.patch(f"/admin/campaigns/{campaign.id}", headers=h,
                               json=await the_editors_body(client, h, campaign.id))
    assert whole.status_code == 200, whole.text

    for field, value in (("group_price_fen", 9_800), ("original_price_fen", 30_000),
                         ("tiers", [{"min_units": 10, "price_fen": 8_000}, {"min_units": 20, "price_fen": 7_700}])):
        refused = await client.patch(item_url, headers=h, json={**as_the_editor_sends(shown), field: value})
        assert refused.status_code == 409 and refused.json()["code"] == "live_campaign_change_refused", refused.text
        assert refused.json()["detail"]["field"] == field
        body = await the_editors_body(client, h, campaign.id, title="新标题")
        body["skus"][0][field] = value
        together = await client.patch(f"/admin/campaigns/{campaign.id}", headers=h, json=body)
        assert together.status_code == 409 and together.json()["detail"]["field"] == f"skus[0].{field}", together.text

    saved, item = await stored(campaign.id, sku.id)
    assert saved.title == campaign.title
    assert (item.title, item.group_price_fen, item.original_price_fen, item.tiers) == (
        "热玛吉 全脸", sku.group_price_fen, sku.original_price_fen, sku.tiers)
    assert await audited(staff.id) == [("campaign.update_sku", str(sku.id), {"title": "热玛吉 全脸"})]
