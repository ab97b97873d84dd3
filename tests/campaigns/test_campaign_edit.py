"""Staff edit a campaign and its items the way the console does: an item sent back with its stock unchanged is
saved, stock never drops below what buyers have taken (sold or held), a refused item leaves the campaign as
it was, and a running campaign sent back whole refuses only the locked fields whose value really changes."""

from __future__ import annotations

import asyncio
import contextvars
from datetime import datetime, timedelta, timezone

import pytest

from campaigns.groupbuy import groups, service
from campaigns.groupbuy.models import Campaign, CampaignKind, CampaignSku
from campaigns.groupbuy.schemas import CampaignUpdate, SkuCreate, SkuEdit, SkuUpdate
from kernel import clock
from kernel.db import transaction
from kernel.identity.models import AuditLogEntry
from tests.booking.factories import make_branch
from tests.campaigns.groupbuy_factories import make_campaign, pay
from tests.factories import blocked_on, make_customer, make_staff, staff_headers

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


# --- a save from a stale copy (the editor sends back the version it loaded) -----------------------------------

async def edited_meanwhile_by_someone_else(client, h_other, campaign_id: int, sku_id: int, change: str) -> None:
    """Staff member B's edit, made while A's editor is open: an item's stock raised, or the title changed."""
    if change == "stock":
        r = await client.patch(f"/admin/campaigns/{campaign_id}/skus/{sku_id}", json={"stock": 40}, headers=h_other)
    else:
        r = await client.patch(f"/admin/campaigns/{campaign_id}", json={"title": "B 改的标题"}, headers=h_other)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("change", ["stock", "title"])
async def test_a_save_from_a_copy_someone_changed_since_is_refused_and_changes_nothing(client, change):
    """A opened the editor, B raised an item's stock (or retitled the campaign), A saved an unrelated change:
    A's whole form went back and silently put B's stock (title) back. Now A's save is refused, B's value stays."""
    a, b = await make_staff("campaign"), await make_staff("campaign")
    ha, hb = staff_headers(a), staff_headers(b)
    campaign, sku = await running_campaign_with_two_units_held()
    body = await the_editors_body(client, ha, campaign.id, description="A 改的说明")
    body["version"] = (await client.get(f"/admin/campaigns/{campaign.id}", headers=ha)).json()["version"]

    await edited_meanwhile_by_someone_else(client, hb, campaign.id, sku.id, change)
    r = await client.patch(f"/admin/campaigns/{campaign.id}", json=body, headers=ha)
    assert r.status_code == 409 and r.json()["code"] == "edited_meanwhile", r.text
    assert r.json()["detail"] == {"field": "version"}

    saved, item = await stored(campaign.id, sku.id)
    assert saved.description == campaign.description  # A's change is not saved either
    if change == "stock":
        assert (item.stock_total, item.stock_left) == (40, 38)
    else:
        assert saved.title == "B 改的标题"
    assert await audited(a.id) == []

    # Reloaded, A's copy is current again and the same change is saved, B's value kept.
    again = await the_editors_body(client, ha, campaign.id, description="A 改的说明")
    again["version"] = (await client.get(f"/admin/campaigns/{campaign.id}", headers=ha)).json()["version"]
    r = await client.patch(f"/admin/campaigns/{campaign.id}", json=again, headers=ha)
    assert r.status_code == 200, r.text
    saved, item = await stored(campaign.id, sku.id)
    assert saved.description == "A 改的说明"
    assert (item.stock_total, saved.title) == ((40, campaign.title) if change == "stock" else (5, "B 改的标题"))
    assert await audited(a.id) == [("campaign.update", str(campaign.id), {"description": "A 改的说明"})]


async def test_customers_taking_stock_do_not_make_the_editors_copy_stale(client):
    """Joins and payments move an item's stock_left and sold_units while the editor is open; they are no staff
    edit, so a busy campaign's editor still saves (else every busy campaign would refuse edits)."""
    h = staff_headers(await make_staff("campaign"))
    campaign, sku = await running_campaign_with_two_units_held()
    shown = (await client.get(f"/admin/campaigns/{campaign.id}", headers=h)).json()
    body = {**await the_editors_body(client, h, campaign.id, title="闺蜜卡 水光 热卖"), "version": shown["version"]}

    async with transaction() as conn:
        _, order, _ = await groups.open_group(conn, (await make_customer()).id, campaign.id, sku.id)
    await pay(order)
    busy = (await client.get(f"/admin/campaigns/{campaign.id}", headers=h)).json()
    assert (busy["skus"][0]["stock_left"], busy["skus"][0]["sold_units"]) == (2, 1)
    assert busy["version"] == shown["version"]

    r = await client.patch(f"/admin/campaigns/{campaign.id}", json=body, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["title"] == "闺蜜卡 水光 热卖"
    assert (r.json()["skus"][0]["stock_total"], r.json()["skus"][0]["stock_left"]) == (5, 2)
    # The answer carries the new version: the editor's next save from it is current.
    assert r.json()["version"] != shown["version"]
    assert r.json()["version"] == (await client.get(f"/admin/campaigns/{campaign.id}", headers=h)).json()["version"]
    again = await client.patch(f"/admin/campaigns/{campaign.id}", headers=h,
                               json={"title": "闺蜜卡 水光 返场", "version": r.json()["version"]})
    assert again.status_code == 200, again.text


async def test_a_save_without_a_version_is_applied_as_before(client):
    """Backward compatible: a client that sends no version keeps the last-save-wins behaviour it always had."""
    h = staff_headers(await make_staff("campaign"))
    campaign, sku = await running_campaign_with_two_units_held()
    body = await the_editors_body(client, h, campaign.id, description="旧客户端")
    await edited_meanwhile_by_someone_else(client, h, campaign.id, sku.id, "stock")
    r = await client.patch(f"/admin/campaigns/{campaign.id}", json=body, headers=h)
    assert r.status_code == 200, r.text
    saved, item = await stored(campaign.id, sku.id)
    assert saved.description == "旧客户端" and item.stock_total == 5  # its stale stock went back, as it always did


@pytest.mark.parametrize("version", ["", "not-a-version", "0" * 31, "A" * 32, 12])
async def test_a_malformed_version_is_refused_with_the_field_named(client, version):
    staff = await make_staff("campaign")
    campaign, _ = await running_campaign_with_two_units_held()
    r = await client.patch(f"/admin/campaigns/{campaign.id}", headers=staff_headers(staff),
                           json={"title": "新标题", "version": version})
    assert r.status_code == 400 and r.json()["code"] == "validation_error", r.text
    assert r.json()["detail"]["field"] == "version"
    assert (await Campaign.get(id=campaign.id)).title == campaign.title
    assert await audited(staff.id) == []


async def test_saves_racing_from_one_copy_save_once(client):
    """Many staff saves sent at once from the same copy: the first one saved changes the version, so every
    other one is refused; without the row lock they all read the old version and all passed."""
    staff = await make_staff("campaign")
    h = staff_headers(staff)
    campaign, sku = await running_campaign_with_two_units_held()
    version = (await client.get(f"/admin/campaigns/{campaign.id}", headers=h)).json()["version"]
    answers = await asyncio.gather(*(
        client.patch(f"/admin/campaigns/{campaign.id}", headers=h,
                     json={"title": f"标题 {n}", "skus": [{"id": sku.id, "stock": 10 + n}], "version": version})
        for n in range(8)))
    assert sorted(r.status_code for r in answers) == [200] + [409] * 7, [r.text for r in answers]
    [won] = [r.json() for r in answers if r.status_code == 200]
    saved, item = await stored(campaign.id, sku.id)
    assert (saved.title, item.stock_total) == (won["title"], won["skus"][0]["stock_total"])
    assert item.stock_total - item.stock_left == 2
    assert [a for a, _, _ in await audited(staff.id)] == ["campaign.update", "campaign.update_sku"]


# --- branches are a set ---------------------------------------------------------------------------------------

async def test_branches_sent_in_another_order_are_no_change(client):
    """Branches are a set: the same branches reordered (or one listed twice) were saved and audited as a change."""
    staff = await make_staff("campaign")
    h = staff_headers(staff)
    first, second = await make_branch(), await make_branch()
    campaign, _ = await make_campaign(branch_ids=[first.id, second.id])
    r = await client.patch(f"/admin/campaigns/{campaign.id}", headers=h,
                           json={"branch_ids": [second.id, first.id, second.id]})
    assert r.status_code == 200, r.text
    saved = await Campaign.get(id=campaign.id)
    assert (saved.branch_ids, saved.updated_at) == ([first.id, second.id], campaign.updated_at)
    assert await audited(staff.id) == []

    third = await make_branch()
    r = await client.patch(f"/admin/campaigns/{campaign.id}", headers=h, json={"branch_ids": [third.id, first.id]})
    assert r.status_code == 200, r.text
    assert (await Campaign.get(id=campaign.id)).branch_ids == sorted([first.id, third.id])
    assert await audited(staff.id) == [("campaign.update", str(campaign.id), {"branch_ids": sorted([first.id, third.id])})]


# --- a stock change judged on what is taken now ---------------------------------------------------------------


async def while_uncommitted(meanwhile, request):
    """Run `meanwhile(conn)` in a transaction, send `request()` from outside it, wait until the request waits
    for a row `meanwhile` holds, then commit: the request is decided after what happened meanwhile. Opening a
    group holds the campaign's row (its foreign key's shared lock) and the item's, so the campaign route's edit
    waits at the campaign, the item route's at the item."""
    outside = contextvars.copy_context()  # the request's own connection, not this transaction
    async with transaction() as conn:
        await meanwhile(conn)
        sent = asyncio.create_task(request(), context=outside)
        for _ in range(500):
            if await blocked_on("gb_sku") or await blocked_on("gb_campaign") or sent.done():
                break
            await asyncio.sleep(0.01)
        assert not sent.done(), sent.result().text  # the edit waits for a row taken meanwhile
    return await sent


async def two_more_units_held(conn, campaign: Campaign, sku: CampaignSku) -> None:
    for _ in range(2):
        await groups.open_group(conn, (await make_customer()).id, campaign.id, sku.id)


@pytest.mark.parametrize("route", ["item", "campaign"])
async def test_a_stock_refused_while_customers_take_it_names_what_is_taken_then(client, route):
    """Stock 5 with 2 taken; staff lower it to 3 while two more customers are taking a unit each. The edit had
    read 2 taken before it waited for the item's row, and refused "below what is sold or held" with taken 2:
    3 is not below 2. Judged on the row as it is when the edit gets it, the refusal says 4."""
    h = staff_headers(await make_staff("campaign"))
    campaign, sku = await running_campaign_with_two_units_held()
    if route == "item":
        url, body, field = f"/admin/campaigns/{campaign.id}/skus/{sku.id}", {"stock": 3}, "stock"
    else:
        url, body, field = f"/admin/campaigns/{campaign.id}", {"skus": [{"id": sku.id, "stock": 3}]}, "skus[0].stock"
    r = await while_uncommitted(lambda conn: two_more_units_held(conn, campaign, sku),
                                lambda: client.patch(url, json=body, headers=h))
    assert r.status_code == 422 and r.json()["code"] == "validation_failed", r.text
    assert r.json()["detail"] == {"field": field, "taken": 4}
    _, item = await stored(campaign.id, sku.id)
    assert (item.stock_total, item.stock_left) == (5, 1)


async def test_a_stock_set_while_another_staff_member_raises_it_is_not_refused_as_below_what_is_taken(client):
    """B raised the stock to 10 (not committed yet) while A, without a version, set it to 4 through the item's
    route: A's statement matched no row (the total it had read was gone) and was refused as "below what is sold
    or held" with taken 2, though 4 is above 2. The edit now reads the row it changes, so A's 4 is applied
    (last save wins without a version) and what is taken stays taken."""
    h = staff_headers(await make_staff("campaign"))
    campaign, sku = await running_campaign_with_two_units_held()

    async def raised_by_b(conn):
        await service.update_sku(conn, campaign.id, sku.id, SkuUpdate(stock=10))

    r = await while_uncommitted(raised_by_b, lambda: client.patch(
        f"/admin/campaigns/{campaign.id}/skus/{sku.id}", json={"stock": 4}, headers=h))
    assert r.status_code == 200, r.text
    _, item = await stored(campaign.id, sku.id)
    assert (item.stock_total, item.stock_left) == (4, 2)


# --- one read of the campaign and its items per edit ----------------------------------------------------------

async def reads_of_an_edit(items: int) -> int:
    """SELECTs the campaign edit runs in its transaction for a campaign of `items` items, each retitled."""
    campaign, _ = await make_campaign(skus=[SkuCreate(title=f"项目 {i}", original_price_fen=30_000,
                                                      group_price_fen=9_900, stock=10) for i in range(items)])
    skus = await CampaignSku.filter(campaign_id=campaign.id).order_by("id")

    async def selects(conn) -> int:
        [row] = await conn.execute_query_dict("SHOW SESSION STATUS LIKE 'Com_select'")
        return int(row["Value"])

    async with transaction() as conn:
        before = await selects(conn)
        edited = await service.update_campaign(conn, campaign.id, CampaignUpdate(
            title="新标题", skus=[SkuEdit(id=s.id, title=f"{s.title} 改") for s in skus]))
        after = await selects(conn)
    assert len(edited.items_changed) == items
    return after - before


async def test_an_edit_reads_the_campaign_and_its_items_once_however_many_items_it_changes():
    """The edit read the campaign again, and the item twice, for each item it changed (and the campaign once
    more for its answer): a campaign of many items cost that many more reads inside its transaction."""
    one, five = await reads_of_an_edit(1), await reads_of_an_edit(5)
    assert one == five, (one, five)
    assert one <= 2, one  # the campaign and its items, each read once (locked)


async def test_every_field_staff_edit_moves_the_version_and_nothing_buyers_move_does():
    """The version covers each field of the edit bodies (read off CampaignUpdate and SkuUpdate, so a field added
    there is covered), and none of what customers joining or paying change."""
    campaign, sku = await make_campaign(stock=5)
    version = service.edit_version(campaign, [sku])
    assert set(service.CAMPAIGN_FIELDS) == set(CampaignUpdate.__struct_fields__) - {"skus", "version"}
    assert set(service.ITEM_FIELDS) == set(SkuUpdate.__struct_fields__)
    for name in service.CAMPAIGN_FIELDS:
        edited = await Campaign.get(id=campaign.id)
        before = getattr(edited, name)
        changed = {datetime: lambda v: v + timedelta(minutes=1), bool: lambda v: not v, str: lambda v: v + "!",
                   list: lambda v: [*v, 999], type(None): lambda v: 7 if name != "branch_ids" else [999]}
        setattr(edited, name, changed.get(type(before), lambda v: v + 1)(before))
        assert service.edit_version(edited, [sku]) != version, name
    for name in service.ITEM_FIELDS:
        item = await CampaignSku.get(id=sku.id)
        column = {"stock": "stock_total"}.get(name, name)
        before = getattr(item, column)
        setattr(item, column, [{"min_units": 3, "price_fen": 1}] if name == "tiers" else
                (before + "!" if isinstance(before, str) else before + 1))
        assert service.edit_version(campaign, [item]) != version, name
    bought = await CampaignSku.get(id=sku.id)
    bought.stock_left, bought.sold_units = bought.stock_left - 2, bought.sold_units + 2
    assert service.edit_version(campaign, [bought]) == version
