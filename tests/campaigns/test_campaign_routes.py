"""Campaign routes: staff CRUD with validation naming the field, the state machine, live-change limits, stats;
customers: live campaigns, shareable group view, new-customer-only, one open group, refund after success."""

from __future__ import annotations

from datetime import timedelta

from campaigns.groupbuy import groups
from campaigns.groupbuy.models import CampaignEntry, CampaignKind, EntryStatus, Group, GroupStatus
from orders import service as orders
from kernel import clock
from kernel.db import transaction
from points_mall.models import Voucher, VoucherStatus
from tests.orders.factories import run_jobs
from tests.campaigns.groupbuy_factories import make_campaign, pay
from tests.factories import customer_headers, make_customer, make_staff, staff_headers


def bestie_body(**overrides):
    now = clock.now()
    body = {
        "kind": "bestie_card", "title": "闺蜜卡 水光", "starts_at": (now + timedelta(hours=1)).isoformat(),
        "ends_at": (now + timedelta(days=3)).isoformat(), "group_size": 3, "time_limit_minutes": 120,
        "skus": [{"title": "水光针", "original_price_fen": 98_000, "group_price_fen": 49_900, "stock": 30}],
    }
    body.update(overrides)
    return body


async def test_staff_create_validate_publish_change_and_cancel(client):
    staff = await make_staff("campaign")
    h = staff_headers(staff)
    bad = {
        "group_size": ({"group_size": 7}, "group_size"),
        "ends_at": ({"ends_at": (clock.now() - timedelta(days=1)).isoformat()}, "ends_at"),
        "virtual": ({"virtual_min_paid": 3}, "virtual_min_paid"),
        "tiers on bestie": ({"skus": [{"title": "x", "original_price_fen": 100, "group_price_fen": 90, "stock": 1,
                                       "tiers": [{"min_units": 2, "price_fen": 80}]}]}, "skus[0].tiers"),
        "price": ({"skus": [{"title": "x", "original_price_fen": 100, "group_price_fen": 101, "stock": 1}]},
                  "skus[0].group_price_fen"),
    }
    for name, (override, field) in bad.items():
        r = await client.post("/admin/campaigns", json=bestie_body(**override), headers=h)
        assert r.status_code == 422 and r.json()["detail"]["field"] == field, (name, r.text)
    tiers = {"kind": "category", "group_size": 1, "time_limit_minutes": 0,
             "skus": [{"title": "热玛吉", "original_price_fen": 2_000_000, "group_price_fen": 1_500_000, "stock": 9,
                       "tiers": [{"min_units": 5, "price_fen": 1_400_000}, {"min_units": 9, "price_fen": 1_450_000}]}]}
    r = await client.post("/admin/campaigns", json=bestie_body(**tiers), headers=h)
    assert r.status_code == 422 and r.json()["detail"]["field"] == "skus[0].tiers[1].price_fen"
    missing = await client.post("/admin/campaigns", json={"kind": "bestie_card"}, headers=h)
    assert missing.status_code == 400 and missing.json()["detail"]["field"]

    created = await client.post("/admin/campaigns", json=bestie_body(), headers=h)
    assert created.status_code == 201, created.text
    campaign = created.json()
    assert campaign["status"] == "draft" and campaign["skus"][0]["stock_left"] == 30
    cid, sku_id = campaign["id"], campaign["skus"][0]["id"]
    published = await client.post(f"/admin/campaigns/{cid}/publish", headers=h)
    assert published.json()["status"] == "scheduled"
    again = await client.post(f"/admin/campaigns/{cid}/publish", headers=h)
    assert again.status_code == 409 and again.json()["code"] == "campaign_state_conflict"
    # Not started yet: still free to change the price.
    assert (await client.patch(f"/admin/campaigns/{cid}/skus/{sku_id}", json={"group_price_fen": 45_000},
                               headers=h)).status_code == 200
    cancelled = await client.post(f"/admin/campaigns/{cid}/cancel", headers=h)
    assert cancelled.json()["status"] == "cancelled"
    assert (await client.patch(f"/admin/campaigns/{cid}", json={"title": "x"}, headers=h)).status_code == 409


async def test_a_live_campaign_keeps_its_prices_and_never_drops_stock_below_what_is_taken(client):
    staff = await make_staff("campaign")
    h = staff_headers(staff)
    campaign, sku = await make_campaign(stock=5)
    async with transaction() as conn:
        await groups.open_group(conn, (await make_customer()).id, campaign.id, sku.id)
        await groups.open_group(conn, (await make_customer()).id, campaign.id, sku.id)
    price = await client.patch(f"/admin/campaigns/{campaign.id}/skus/{sku.id}", json={"group_price_fen": 1}, headers=h)
    assert price.status_code == 409 and price.json()["code"] == "live_campaign_change_refused"
    assert price.json()["detail"]["field"] == "group_price_fen"
    size = await client.patch(f"/admin/campaigns/{campaign.id}", json={"group_size": 4}, headers=h)
    assert size.status_code == 409 and size.json()["detail"]["field"] == "group_size"
    low = await client.patch(f"/admin/campaigns/{campaign.id}/skus/{sku.id}", json={"stock": 1}, headers=h)
    assert low.status_code == 422 and low.json()["detail"]["field"] == "stock"
    ok = await client.patch(f"/admin/campaigns/{campaign.id}/skus/{sku.id}", json={"stock": 2}, headers=h)
    assert ok.status_code == 200 and ok.json()["stock_left"] == 0 and ok.json()["stock_total"] == 2
    more = await client.patch(f"/admin/campaigns/{campaign.id}", json={"title": "新标题",
                                                                         "ends_at": (clock.now() + timedelta(days=9)).isoformat()},
                              headers=h)
    assert more.status_code == 200 and more.json()["title"] == "新标题"


async def test_customer_opens_shares_and_friends_join(client, redis):
    campaign, sku = await make_campaign(group_size=3, new_customers_only=True)
    leader = await make_customer(nickname="Alice", avatar_url="https://img.example/a.png")
    opened = await client.post("/app/groups", json={"campaign_id": campaign.id, "sku_id": sku.id},
                               headers=customer_headers(leader))
    assert opened.status_code == 201, opened.text
    seat = opened.json()
    second = await client.post("/app/groups", json={"campaign_id": campaign.id, "sku_id": sku.id},
                               headers=customer_headers(leader))
    assert second.status_code == 409 and second.json()["code"] == "already_leading_group"

    friend = await make_customer(nickname="Bella")
    early = await client.post(f"/app/groups/{seat['group_id']}/join", headers=customer_headers(friend))
    assert early.status_code == 409 and early.json()["code"] == "group_not_joinable"  # the leader has not paid
    paid = await client.post(f"/sandbox/payments/{(await orders_of(seat['order_id'])).out_trade_no}/succeed",
                             headers=customer_headers(leader))
    assert paid.status_code == 200
    await run_jobs(redis)

    listed = await client.get("/app/campaigns", headers=customer_headers(friend))
    assert campaign.id in [c["id"] for c in listed.json()]
    view = await client.get(f"/app/groups/{seat['group_id']}", headers=customer_headers(friend))
    body = view.json()
    assert body["status"] == "open" and body["seats_left"] == 2 and body["seconds_left"] > 0
    assert body["members"] == [{"nickname": "Alice", "avatar_url": "https://img.example/a.png", "is_leader": True,
                                "paid": True}]
    assert "customer_id" not in view.text and "phone" not in view.text

    joined = await client.post(f"/app/groups/{seat['group_id']}/join", headers=customer_headers(friend))
    assert joined.status_code == 201
    twice = await client.post(f"/app/groups/{seat['group_id']}/join", headers=customer_headers(friend))
    assert twice.status_code == 409 and twice.json()["code"] == "already_in_group"
    # The leader has paid before: not a new customer, cannot join someone else's new-customer group.
    other, _ = await open_group_for(campaign, sku)
    refused = await client.post(f"/app/groups/{other}/join", headers=customer_headers(leader))
    assert refused.status_code == 403 and refused.json()["code"] == "new_customers_only"

    staff = staff_headers(await make_staff("campaign"))
    stats = await client.get(f"/admin/campaigns/{campaign.id}/stats", headers=staff)
    assert stats.status_code == 200
    assert stats.json()["share_views"] >= 1 and stats.json()["joins"] == 1 and stats.json()["groups_open"] >= 1
    assert stats.json()["seats_taken"] == 2 + 1 and stats.json()["groups_virtual"] == 0  # two groups opened

    # Staff see every group with its members: who, which seat, paid or still holding it.
    listed = await client.get(f"/admin/campaigns/{campaign.id}/groups", headers=staff)
    assert listed.status_code == 200 and listed.json()["total"] == 2
    mine = next(g for g in listed.json()["items"] if g["id"] == seat["group_id"])
    assert [(m["nickname"], m["role"], m["status"]) for m in mine["members"]] == [
        ("Alice", "leader", "paid"), ("Bella", "member", "held")]
    assert mine["members"][0]["order_id"] == seat["order_id"] and mine["seats_taken"] == 2
    only_open = await client.get(f"/admin/campaigns/{campaign.id}/groups", params={"status": "open", "limit": 1},
                                 headers=staff)
    assert only_open.json()["total"] == 2 and len(only_open.json()["items"]) == 1
    refused = await client.get(f"/admin/campaigns/{campaign.id}/groups",
                               headers=staff_headers(await make_staff("front_desk")))
    assert refused.status_code == 403


async def test_a_friend_can_join_the_moment_the_leaders_payment_is_confirmed(client, redis):
    # The attack: the group stayed `pending` until the paid-order job ran (about a second), so a friend
    # tapping "join" right after the leader paid was refused `group_not_joinable`. No job runs here.
    campaign, sku = await make_campaign(group_size=3)
    leader, friend, late = await make_customer(), await make_customer(), await make_customer()
    opened = await client.post("/app/groups", json={"campaign_id": campaign.id, "sku_id": sku.id},
                               headers=customer_headers(leader))
    seat = opened.json()
    order = await orders_of(seat["order_id"])
    paid = await client.post(f"/sandbox/payments/{order.out_trade_no}/succeed", headers=customer_headers(leader))
    assert paid.status_code == 200 and paid.json()["outcome"] == "applied"
    assert (await Group.get(id=seat["group_id"])).status == GroupStatus.open
    joined = await client.post(f"/app/groups/{seat['group_id']}/join", headers=customer_headers(friend))
    assert joined.status_code == 201, joined.text
    # The friend pays and is counted before the leader's job runs; the leader is still counted once after.
    friend_order = await orders_of(joined.json()["order_id"])
    await client.post(f"/sandbox/payments/{friend_order.out_trade_no}/succeed", headers=customer_headers(friend))
    async with transaction() as conn:
        await orders.handle_paid_order(conn, friend_order.id)
    assert (await Group.get(id=seat["group_id"])).paid_count == 1
    await run_jobs(redis)
    group = await Group.get(id=seat["group_id"])
    assert group.status == GroupStatus.open and group.paid_count == 2
    third = await client.post(f"/app/groups/{seat['group_id']}/join", headers=customer_headers(late))
    assert third.status_code == 201
    entries = await CampaignEntry.filter(group_id=seat["group_id"]).order_by("id")
    assert [e.status for e in entries] == [EntryStatus.paid, EntryStatus.paid, EntryStatus.held]


async def orders_of(order_id):
    async with transaction() as conn:
        return await orders.get_order(conn, order_id)


async def open_group_for(campaign, sku):
    leader = await make_customer()
    async with transaction() as conn:
        group, order, _ = await groups.open_group(conn, leader.id, campaign.id, sku.id)
    await pay(order)
    return group.id, leader


async def test_refund_after_success_cancels_the_voucher_and_the_group_stays_succeeded(client, redis):
    campaign, sku = await make_campaign(group_size=2)
    group_id, leader = await open_group_for(campaign, sku)
    member = await make_customer()
    async with transaction() as conn:
        _, order, _ = await groups.join_group(conn, member.id, group_id)
    await pay(order)
    await run_jobs(redis)
    assert (await Group.get(id=group_id)).status == GroupStatus.succeeded
    voucher = await Voucher.get(source_type="group_order", source_id=str(order.id))
    assert voucher.status == VoucherStatus.issued

    finance = await make_staff("finance")
    refund = await client.post(f"/admin/orders/{order.id}/refunds", json={"reason": "customer_request"},
                               headers=staff_headers(finance) | {"Idempotency-Key": "refund-friend-1"})
    assert refund.status_code == 201 and refund.json()["amount_fen"] == order.total_fen
    await run_jobs(redis)
    assert (await Voucher.get(id=voucher.id)).status == VoucherStatus.cancelled
    assert (await CampaignEntry.get(order_id=order.id)).status == EntryStatus.refunded
    group = await Group.get(id=group_id)
    assert group.status == GroupStatus.succeeded and group.paid_count == 2
    stats = await client.get(f"/admin/campaigns/{campaign.id}/stats", headers=staff_headers(await make_staff("campaign")))
    s = stats.json()
    assert s["groups_succeeded"] == 1 and s["units_sold"] == 1 and s["refunds"] == 1
    assert s["gmv_fen"] == 2 * sku.group_price_fen and s["refunded_fen"] == sku.group_price_fen


async def test_category_purchase_respects_the_customer_limit(client):
    campaign, sku = await make_campaign(CampaignKind.category, per_customer_limit=2, stock=10)
    buyer = await make_customer()
    h = customer_headers(buyer)
    first = await client.post(f"/app/campaigns/{campaign.id}/purchases", json={"sku_id": sku.id, "quantity": 2},
                              headers=h)
    assert first.status_code == 201 and first.json()["total_fen"] == 2 * sku.group_price_fen
    more = await client.post(f"/app/campaigns/{campaign.id}/purchases", json={"sku_id": sku.id}, headers=h)
    assert more.status_code == 409 and more.json()["code"] == "customer_limit_reached"
    wrong = await client.post("/app/groups", json={"campaign_id": campaign.id, "sku_id": sku.id}, headers=h)
    assert wrong.status_code == 409 and wrong.json()["code"] == "wrong_campaign_kind"
    detail = await client.get(f"/app/campaigns/{campaign.id}", headers=h)
    assert detail.json()["skus"][0]["stock_left"] == 8


async def test_a_purchase_whose_total_overflows_an_order_is_refused_and_holds_nothing(client):
    # 30 x 1,000,000 yuan is past the order's INT amount: a 422 naming the field, not a database error.
    campaign, sku = await make_campaign(CampaignKind.category, per_customer_limit=100, group_price_fen=100_000_000,
                                        stock=100)
    h = customer_headers(await make_customer())
    huge = await client.post(f"/app/campaigns/{campaign.id}/purchases", json={"sku_id": sku.id, "quantity": 30},
                             headers=h)
    assert huge.status_code == 422 and huge.json()["detail"]["field"] == "quantity", huge.text
    fits = await client.post(f"/app/campaigns/{campaign.id}/purchases", json={"sku_id": sku.id, "quantity": 21},
                             headers=h)
    assert fits.status_code == 201 and fits.json()["total_fen"] == 21 * 100_000_000
    detail = await client.get(f"/app/campaigns/{campaign.id}", headers=h)
    assert detail.json()["skus"][0]["stock_left"] == 100 - 21


async def test_bad_times_and_ids_in_campaign_writes_are_4xx_never_a_500(client):
    h = staff_headers(await make_staff("campaign"))
    campaign, _ = await make_campaign()
    naive = await client.patch(f"/admin/campaigns/{campaign.id}", json={"ends_at": "2031-01-01T00:00:00"}, headers=h)
    assert naive.status_code == 422 and naive.json()["detail"]["field"] == "ends_at", naive.text
    for sku_override in ({"service_id": 2**63}, {"service_id": 0}):
        sku = {"title": "水光针", "original_price_fen": 98_000, "group_price_fen": 49_900, "stock": 30, **sku_override}
        r = await client.post("/admin/campaigns", json=bestie_body(skus=[sku]), headers=h)
        assert r.status_code == 400 and r.json()["code"] == "validation_error", r.text
    branches = await client.post("/admin/campaigns", json=bestie_body(branch_ids=[-1]), headers=h)
    assert branches.status_code == 400 and branches.json()["code"] == "validation_error", branches.text


async def test_staff_list_campaigns_by_status_and_customers_never_see_drafts(client):
    h = staff_headers(await make_staff("campaign"))
    live, _ = await make_campaign()
    draft, _ = await make_campaign(live=False)
    listed = await client.get("/admin/campaigns", params={"status": "draft", "limit": 200}, headers=h)
    assert listed.status_code == 200
    ids = [c["id"] for c in listed.json()["items"]]
    assert draft.id in ids and live.id not in ids and listed.json()["total"] >= 1
    customer = customer_headers(await make_customer())
    assert (await client.get(f"/app/campaigns/{draft.id}", headers=customer)).status_code == 404
    assert (await client.get(f"/app/campaigns/{live.id}", headers=customer)).json()["id"] == live.id
