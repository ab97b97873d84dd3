"""Fills a database the way a clinic's would be under release 0.1.0, using 0.1.0's own code.

Run by build_previous_release.py inside a `git worktree` of the 0.1.0 commit (its cwd is that
worktree, so every import below is 0.1.0's code). Customers act through the HTTP API (login, check-in,
triage, booking, redemptions, group buys, sandbox payments); staff act through the /admin API; the
background jobs run in burst workers; the referral demo plays every reward state and two settlement
batches through the services at injected times. Then (step `read`, after the builder dumped the
database) the API reads of api_reads.py are taken with the clock frozen and written with their subjects.
"""

from __future__ import annotations

import asyncio
import json
import runpy
import sys
from datetime import datetime, timedelta
from pathlib import Path

import httpx

from kernel import clock, db

STAFF_USERNAME = "upgrade.admin"
STAFF_PASSWORD = "upgrade-admin-password"
CUSTOMERS = ["alice", "bella", "chloe", "david", "erin", "fay", "gina", "hana", "ivy", "june", "kate"]


def items(body):
    """A list answer is either a bare list or a page with `items`."""
    return body if isinstance(body, list) else body["items"]


class Api:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.tokens: dict[str, str] = {}

    async def login(self, name: str) -> int:
        r = await self.http.post("/app/auth/login", json={"code": f"sandbox:{name}"})
        r.raise_for_status()
        self.tokens[name] = r.json()["access_token"]
        return r.json()["customer_id"]

    async def staff_login(self) -> None:
        r = await self.http.post("/admin/auth/login", json={"username": STAFF_USERNAME, "password": STAFF_PASSWORD})
        r.raise_for_status()
        self.tokens["staff"] = r.json()["access_token"]

    async def call(self, who: str, method: str, path: str, expect: int | tuple = (200, 201), **kwargs):
        headers = {"Authorization": f"Bearer {self.tokens[who]}", **kwargs.pop("headers", {})}
        r = await self.http.request(method, path, headers=headers, **kwargs)
        expected = expect if isinstance(expect, tuple) else (expect,)
        if r.status_code not in expected:
            raise RuntimeError(f"{who} {method} {path}: {r.status_code} {r.text}")
        return r.json() if r.content else None

    async def pay(self, who: str, order_id: int) -> None:
        order = await self.call(who, "GET", f"/app/orders/{order_id}")
        await self.call(who, "POST", f"/sandbox/payments/{order['out_trade_no']}/succeed")


async def populate(api: Api, redis) -> dict:
    from campaigns.groupbuy import service as groupbuy
    from campaigns.groupbuy.models import Campaign, CampaignKind, CampaignStatus
    from campaigns.groupbuy.schemas import CampaignCreate, SkuCreate
    from kernel.identity.service import create_staff
    from tests.campaigns.factories import run_jobs

    async with db.transaction() as conn:
        await create_staff(conn, username=STAFF_USERNAME, password=STAFF_PASSWORD,
                           roles=["admin", "campaign", "finance", "front_desk"])
    await api.staff_login()
    ids = {name: await api.login(name) for name in CUSTOMERS}

    # Daily check-ins (points and lots).
    for name in CUSTOMERS:
        await api.call(name, "POST", "/app/check-ins")

    # Consumptions at the front desk: points held as pending; one partly refunded inside the window.
    c1 = await api.call("staff", "POST", "/admin/consumptions",
                        json={"customer_id": ids["erin"], "amount_fen": 268_000, "external_ref": "upgrade:erin:1"})
    await api.call("staff", "POST", "/admin/consumptions",
                   json={"customer_id": ids["fay"], "amount_fen": 88_000, "external_ref": "upgrade:fay:1"})
    await api.call("staff", "POST", f"/admin/consumptions/{c1['id']}/refund",
                   json={"refunded_fen": 68_000, "ref": "upgrade:erin:1:refund"})
    # An adjustment gives June enough points for the mall.
    await api.call("staff", "POST", "/admin/points/adjustments",
                   json={"customer_id": ids["june"], "points": 2000, "reason": "migration from paper cards"},
                   headers={"Idempotency-Key": "upgrade-june-1"})

    # Mall: redemptions and their vouchers; one redeemed at the front desk, one cancelled (points back).
    shelf = {i["title"]: i for i in items(await api.call("alice", "GET", "/app/mall/items"))}
    analysis = next(i for t, i in shelf.items() if t.startswith("Skin analysis"))
    blind_box = next(i for t, i in shelf.items() if t.startswith("Blind box"))
    r1 = await api.call("alice", "POST", "/app/mall/redemptions", json={"item_id": blind_box["id"], "quantity": 2},
                        headers={"Idempotency-Key": "upgrade-alice-1"})
    await api.call("june", "POST", "/app/mall/redemptions", json={"item_id": analysis["id"]},
                   headers={"Idempotency-Key": "upgrade-june-1"})
    vouchers = items(await api.call("alice", "GET", "/app/vouchers"))
    mall_vouchers = [v for v in vouchers if v.get("source_type", "mall_redemption") == "mall_redemption"]
    branches = items(await api.call("alice", "GET", "/app/booking/branches"))
    await api.call("staff", "POST", f"/admin/vouchers/{mall_vouchers[0]['code']}/redeem",
                   json={"branch_id": branches[0]["id"]})
    await api.call("alice", "POST", f"/app/vouchers/{mall_vouchers[1]['id']}/cancel")

    # Bookings with pre-triage: one completed (follow-ups planned), one cancelled, one upcoming and flagged.
    departments = items(await api.call("alice", "GET", "/app/booking/departments"))
    skin = departments[0]
    answers = {"pregnant": False, "allergies": False, "anticoagulants": False, "recent_procedure": False,
               "keloid": False, "notes": "upgrade test: sensitive skin"}
    slots: list[dict] = []
    day = clock.local_today()
    for offset in range(1, 8):
        listed = await api.call("alice", "GET", "/app/booking/slots", params={
            "branch_id": branches[0]["id"], "department_id": skin["id"], "date": str(day + timedelta(days=offset))})
        slots += [s for s in listed["items"] if s.get("seats_left", 1) > 0]
        if len(slots) >= 6:
            break
    bookings = {}
    for i, (name, flagged) in enumerate([("alice", False), ("bella", True), ("chloe", False), ("kate", False)]):
        triage = await api.call(name, "POST", "/app/triage", json={
            "concerns": skin["concerns"][:2], "department_id": skin["id"],
            "answers": {**answers, "allergies": flagged}})
        bookings[name] = await api.call(name, "POST", "/app/bookings",
                                        json={"slot_id": slots[i * 2]["id"], "triage_id": triage["id"]})
    # Alice's visit day comes (the front desk records arrival on the day only), then back to today.
    clock.set_now(datetime.fromisoformat(slots[0]["starts_at"]))
    await api.staff_login()
    await api.call("staff", "POST", f"/admin/bookings/{bookings['alice']['id']}/arrive")
    await api.call("staff", "POST", f"/admin/bookings/{bookings['alice']['id']}/complete")
    clock.set_now(None)
    await api.staff_login()
    await api.call("chloe", "POST", f"/app/bookings/{bookings['chloe']['id']}/cancel")
    await run_jobs(redis)

    # Group buys. The demo bestie card (3 seats, virtual completion at 2 paid): a full group, an open group.
    campaigns = items(await api.call("erin", "GET", "/app/campaigns"))
    bestie = next(c for c in campaigns if c["kind"] == "bestie_card")
    category = next(c for c in campaigns if c["kind"] == "category")
    bestie_sku = (await api.call("erin", "GET", f"/app/campaigns/{bestie['id']}"))["skus"][0]["id"]
    category_sku = (await api.call("erin", "GET", f"/app/campaigns/{category['id']}"))["skus"][0]["id"]
    seat = await api.call("erin", "POST", "/app/groups", json={"campaign_id": bestie["id"], "sku_id": bestie_sku})
    succeeded_group = seat["group_id"]
    await api.pay("erin", seat["order_id"])
    await run_jobs(redis)  # the paid leader's order opens the group
    for name in ("fay", "gina"):
        joined = await api.call(name, "POST", f"/app/groups/{succeeded_group}/join")
        await api.pay(name, joined["order_id"])
    seat = await api.call("hana", "POST", "/app/groups", json={"campaign_id": bestie["id"], "sku_id": bestie_sku})
    open_group = seat["group_id"]
    await api.pay("hana", seat["order_id"])
    await run_jobs(redis)  # the paid leader's order opens the group
    await api.call("ivy", "POST", f"/app/groups/{open_group}/join")  # an unpaid seat in an open group

    # A group that failed: opened two hours ago on a campaign with one hour to fill and no virtual completion;
    # and one that virtually succeeded (two of three paid).
    real_now = clock.now()
    clock.set_now(real_now - timedelta(hours=2))
    async with db.transaction() as conn:
        strict = await groupbuy.create_campaign(conn, CampaignCreate(
            kind=CampaignKind.bestie_card, title="闺蜜卡 · 限时 1 小时", starts_at=clock.now() - timedelta(hours=1),
            ends_at=real_now + timedelta(days=60), group_size=3, time_limit_minutes=60,
            skus=[SkuCreate(title="果酸焕肤", original_price_fen=68_000, group_price_fen=39_900, stock=20)]), staff_id=0)
        virtual = await groupbuy.create_campaign(conn, CampaignCreate(
            kind=CampaignKind.bestie_card, title="闺蜜卡 · 两人成团", starts_at=clock.now() - timedelta(hours=1),
            ends_at=real_now + timedelta(days=60), group_size=3, time_limit_minutes=60, virtual_min_paid=2,
            leader_bonus_points=100,
            skus=[SkuCreate(title="水光补水", original_price_fen=128_000, group_price_fen=69_900, stock=20)]),
            staff_id=0)
        await Campaign.filter(id__in=[strict.id, virtual.id]).using_db(conn).update(status=CampaignStatus.live)
    strict_sku = (await api.call("ivy", "GET", f"/app/campaigns/{strict.id}"))["skus"][0]["id"]
    virtual_sku = (await api.call("ivy", "GET", f"/app/campaigns/{virtual.id}"))["skus"][0]["id"]
    seat = await api.call("ivy", "POST", "/app/groups", json={"campaign_id": strict.id, "sku_id": strict_sku})
    failed_group = seat["group_id"]
    await api.pay("ivy", seat["order_id"])
    await run_jobs(redis)  # the paid leader's order opens the group
    joined = await api.call("june", "POST", f"/app/groups/{failed_group}/join")
    await api.pay("june", joined["order_id"])
    seat = await api.call("kate", "POST", "/app/groups", json={"campaign_id": virtual.id, "sku_id": virtual_sku})
    virtual_group = seat["group_id"]
    await api.pay("kate", seat["order_id"])
    await run_jobs(redis)  # the paid leader's order opens the group
    joined = await api.call("david", "POST", f"/app/groups/{virtual_group}/join")
    await api.pay("david", joined["order_id"])
    await api.call("chloe", "POST", f"/app/groups/{virtual_group}/join")  # never paid
    clock.set_now(None)
    await run_jobs(redis)
    from campaigns.groupbuy.tasks import close_job_id
    for group_id in (failed_group, virtual_group):
        await redis.enqueue_job("campaigns.close_group", group_id, _job_id=close_job_id(group_id) + "-upgrade",
                                _queue_name=_queue())
    await run_jobs(redis)

    # Category group buy: a paid order, a paid order refunded by staff, an order never paid.
    paid = await api.call("bella", "POST", f"/app/campaigns/{category['id']}/purchases", json={"sku_id": category_sku})
    await api.pay("bella", paid["order_id"])
    refunded = await api.call("chloe", "POST", f"/app/campaigns/{category['id']}/purchases",
                              json={"sku_id": category_sku})
    await api.pay("chloe", refunded["order_id"])
    await run_jobs(redis)
    await api.call("staff", "POST", f"/admin/orders/{refunded['order_id']}/refunds",
                   json={"reason": "customer_request", "note": "changed her mind"})
    await api.call("david", "POST", f"/app/campaigns/{category['id']}/purchases", json={"sku_id": category_sku})
    # A group whose leader has not paid yet (pending).
    seat = await api.call("fay", "POST", "/app/groups", json={"campaign_id": virtual.id, "sku_id": virtual_sku})
    pending_group = seat["group_id"]
    await run_jobs(redis)

    # Referrals after payout: the paid friend's treatment is refunded (reversal and a negative adjustment
    # waiting for the next batch); a batch cancelled; the demo's draft batch approved by another finance user.
    consumptions = items(await api.call("staff", "GET", "/admin/consumptions", params={"limit": 200}))
    paid_friend = next(c for c in consumptions if c["external_ref"] == "demo-referral-paid")
    await api.call("staff", "POST", f"/admin/consumptions/{paid_friend['id']}/refund",
                   json={"refunded_fen": paid_friend["amount_fen"], "ref": "upgrade:friend-paid:refund"})
    await run_jobs(redis)
    draft = next(b for b in items(await api.call("staff", "GET", "/admin/settlements")) if b["status"] == "draft")
    await api.call("staff", "POST", f"/admin/settlements/{draft['id']}/approve")
    cancelled = await api.call("staff", "POST", "/admin/settlements",
                               json={"up_to": str(clock.local_today()), "note": "upgrade: cancelled"})
    await api.call("staff", "POST", f"/admin/settlements/{cancelled['id']}/cancel")

    return {
        "customers": ids,
        "groups": {"succeeded": succeeded_group, "open": open_group, "failed": failed_group,
                   "virtual": virtual_group, "pending": pending_group},
        "campaigns": [bestie["id"], category["id"], strict.id, virtual.id],
        "orders": {"category_paid": paid["order_id"], "category_refunded": refunded["order_id"]},
        "redemption": r1["id"],
    }


def _queue() -> str:
    from kernel.settings import get_settings

    return get_settings().redis.queue_name


async def main(step: str, reads_module: str, out_path: str) -> None:
    """`populate` fills the database and writes the subjects; `read` (after the dump was taken, since some
    reads count things, such as a group's share views) adds the recorded answers."""
    from arq.connections import ArqRedis

    from api.app import create_app
    from api.demo import load_demo_data
    from kernel.settings import get_settings

    out = Path(out_path)
    if step == "populate":
        await db.migrate()
    await db.init_db()
    redis = ArqRedis.from_url(get_settings().redis.url)
    app = create_app(embedded_worker=False)
    reads = runpy.run_path(reads_module)
    try:
        async with app.state.clinic_lifespan(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://upgrade.local") as http:
                if step == "populate":
                    await load_demo_data()
                    subjects = await populate(Api(http), redis)
                    out.write_text(json.dumps({"subjects": subjects}))
                    return
                subjects = json.loads(out.read_text())["subjects"]
                read_at = clock.now().replace(microsecond=0)
                requests = await reads["plan_reads"](http, subjects, STAFF_USERNAME, STAFF_PASSWORD, read_at)
                answers = await reads["take_reads"](http, requests, STAFF_USERNAME, STAFF_PASSWORD, read_at)
    finally:
        await redis.aclose()
        await db.close_db()
    out.write_text(json.dumps({
        "release": "0.1.0", "read_at": read_at.isoformat(), "staff": {"username": STAFF_USERNAME,
                                                                     "password": STAFF_PASSWORD},
        "subjects": subjects, "reads": answers,
    }, ensure_ascii=False, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
