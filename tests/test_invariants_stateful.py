"""Stateful property test across rooms: a hypothesis state machine drives customers and staff through the real
routes while burst arq workers run at random points, and after every step the invariants of DESIGN.md are read
back from MariaDB with SQL (stock and seats, balance = ledger, one end state per group, one reward per referee
and level, every fen of every order accounted for)."""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from tortoise import Tortoise

from campaigns.groupbuy.models import CampaignKind
from orders.gateway import default_gateway
from campaigns.referrals.models import ReferrerRewardType, WelcomeRewardType
from kernel import clock
from kernel.db import transaction
from kernel.identity.models import Customer
from points_mall.service import earn_points
from tests.booking.factories import make_branch, make_department, make_slot
from tests.orders.factories import QUEUE, run_jobs
from tests.campaigns.groupbuy_factories import make_campaign
from tests.campaigns.referrals.factories import make_program
from tests.factories import customer_headers, make_staff, staff_headers
from tests.points_mall.factories import make_item

# The jobs a cron would start; the machine enqueues any subset of them before a burst worker runs.
CRONS = (
    "campaigns.sweep",
    "orders.reconcile",
    "points.release_pending",
    "referrals.release_due_rewards",
    "mall.expire_vouchers",
)
MONEY_TAKEN = ("paid", "fulfilled", "refunding", "refunded")

SEEN: Counter = Counter()  # what the steps met (route: status or refusal code), printed with -s

PICK = st.integers(min_value=0, max_value=63)  # an index into a list the machine keeps, taken modulo its length


@dataclass
class Env:
    """What lives in the session's event loop: the machine's thread sends every coroutine there."""

    loop: asyncio.AbstractEventLoop
    client: Any
    redis: Any
    desk: Any
    finance: Any

    def run(self, coro, timeout: float = 120):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


@dataclass
class World:
    """One example's rows: everything the invariants are checked over is reached from these ids."""

    item_id: int = 0
    campaign_id: int = 0
    sku_id: int = 0
    virtual_min_paid: int | None = None
    leader_bonus: int = 0
    per_customer_limit: int = 2
    slot_ids: list[int] = field(default_factory=list)
    customers: list[int] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)
    codes: dict[int, str] = field(default_factory=dict)
    keys: dict[int, list[tuple[str, int]]] = field(default_factory=dict)  # idempotency keys used, with quantity
    consumptions: list[int] = field(default_factory=list)  # front-desk consumption ids
    bookings: list[tuple[int, int]] = field(default_factory=list)  # (customer, booking)
    groups: list[int] = field(default_factory=list)


async def sql(query: str) -> list[dict[str, Any]]:
    rows = await Tortoise.get_connection("default").execute_query_dict(query)
    return [{k: (int(v) if hasattr(v, "as_integer_ratio") and not isinstance(v, float) else v)
             for k, v in row.items()} for row in rows]


def ids(values) -> str:
    return ",".join(str(int(v)) for v in values) or "NULL"


# --- the invariants, read from MariaDB ---------------------------------------------------------------

async def check_stock_seats_and_capacity(w: World) -> None:
    """Invariant 1: mall stock, campaign stock, group seats, quotas and slot capacity are never below zero
    and always equal what the rows holding them add up to."""
    [item] = await sql(f"""
        SELECT i.stock_total, i.stock_reserved,
               COALESCE((SELECT SUM(r.quantity - r.cancelled_quantity) FROM mall_redemption r
                         WHERE r.item_id = i.id), 0) AS held
        FROM mall_item i WHERE i.id = {w.item_id}""")
    assert 0 <= item["stock_reserved"] <= item["stock_total"], item
    assert item["stock_reserved"] == item["held"], item
    [rules] = await sql("SELECT voucher_expiry_returns_points AS r FROM points_rules WHERE id = 1") or [{"r": 0}]
    for r in await sql(f"""
        SELECT r.id, r.quantity, r.cancelled_quantity, r.status, COUNT(v.id) AS vouchers,
               COALESCE(SUM(v.status = 'cancelled'), 0) AS cancelled, COALESCE(SUM(v.status = 'expired'), 0) AS expired
        FROM mall_redemption r
        LEFT JOIN voucher v ON v.source_type = 'mall_redemption' AND v.source_id = CAST(r.id AS CHAR)
        WHERE r.item_id = {w.item_id} GROUP BY r.id"""):
        given_back = r["cancelled"] + (r["expired"] if rules["r"] else 0)
        assert r["vouchers"] == r["quantity"] and r["cancelled_quantity"] == given_back, r
        assert (r["status"] == "cancelled") == (r["cancelled_quantity"] == r["quantity"]), r

    [sku] = await sql(f"""
        SELECT s.stock_total, s.stock_left, s.sold_units,
               COALESCE(SUM(CASE WHEN e.status IN ('held','paid','fulfilled') THEN e.quantity END), 0) AS holding,
               COALESCE(SUM(CASE WHEN e.status IN ('paid','fulfilled') THEN e.quantity END), 0) AS sold
        FROM gb_sku s LEFT JOIN gb_entry e ON e.sku_id = s.id WHERE s.id = {w.sku_id} GROUP BY s.id""")
    assert 0 <= sku["stock_left"] <= sku["stock_total"], sku
    assert sku["stock_left"] == sku["stock_total"] - sku["holding"], sku
    assert sku["sold_units"] == sku["sold"], sku

    for g in await sql(f"""
        SELECT g.id, g.status, g.size, g.seats_taken, g.paid_count,
               COALESCE(SUM(e.status IN ('held','paid','fulfilled')), 0) AS seated,
               COALESCE(SUM(e.status IN ('paid','fulfilled')), 0) AS counted
        FROM gb_group g LEFT JOIN gb_entry e ON e.group_id = g.id
        WHERE g.campaign_id = {w.campaign_id} GROUP BY g.id"""):
        assert 0 <= g["paid_count"] <= g["seats_taken"] <= g["size"], g
        if g["status"] in ("pending", "open"):
            # While a group takes members its counters are exactly the entries holding a seat / paid for one.
            assert (g["seats_taken"], g["paid_count"]) == (g["seated"], g["counted"]), g

    for q in await sql(f"""
        SELECT q.customer_id, q.units,
               COALESCE((SELECT SUM(e.quantity) FROM gb_entry e WHERE e.campaign_id = q.campaign_id
                         AND e.customer_id = q.customer_id AND e.status IN ('held','paid','fulfilled')), 0) AS holding
        FROM gb_quota q WHERE q.campaign_id = {w.campaign_id}"""):
        assert 0 <= q["units"] == q["holding"] <= w.per_customer_limit, q

    for s in await sql(f"""
        SELECT s.id, s.capacity, s.booked, COALESCE(SUM(b.status <> 'cancelled'), 0) AS holding
        FROM booking_slot s LEFT JOIN booking_booking b ON b.slot_id = s.id
        WHERE s.id IN ({ids(w.slot_ids)}) GROUP BY s.id"""):
        assert 0 <= s["booked"] <= s["capacity"] and s["booked"] == s["holding"], s


async def check_points(w: World) -> None:
    """Invariants 2-4: balance = sum of the ledger = sum of the lots, never negative at any entry; one check-in per
    customer and Shanghai day, each with one ledger entry; pending points add up."""
    c = ids(w.customers)
    for a in await sql(f"""
        SELECT c.id, a.balance, a.pending,
               (SELECT COALESCE(SUM(l.delta), 0) FROM points_ledger_entry l WHERE l.customer_id = c.id) AS ledger,
               (SELECT COALESCE(SUM(t.remaining), 0) FROM points_lot t WHERE t.customer_id = c.id) AS lots,
               (SELECT COALESCE(SUM(p.points), 0) FROM points_pending p
                WHERE p.customer_id = c.id AND p.status = 'pending') AS pending_rows
        FROM customer c LEFT JOIN points_account a ON a.customer_id = c.id WHERE c.id IN ({c})"""):
        balance = a["balance"] or 0
        assert 0 <= balance == a["ledger"] == a["lots"], a
        assert (a["pending"] or 0) == a["pending_rows"], a
    running: Counter = Counter()
    for e in await sql(f"""SELECT customer_id, delta, balance_after FROM points_ledger_entry
                           WHERE customer_id IN ({c}) ORDER BY id"""):
        running[e["customer_id"]] += e["delta"]
        assert 0 <= e["balance_after"] == running[e["customer_id"]], e
    assert not await sql(f"""SELECT customer_id, local_date FROM points_check_in WHERE customer_id IN ({c})
                             GROUP BY customer_id, local_date HAVING COUNT(*) > 1""")
    orphans = await sql(f"""
        SELECT ci.id FROM points_check_in ci
        LEFT JOIN points_ledger_entry l
          ON l.ref = CONCAT('checkin:', ci.customer_id, ':', DATE_FORMAT(ci.local_date, '%Y-%m-%d'))
        WHERE ci.customer_id IN ({c}) AND ci.makeup = 0 AND ci.points > 0 AND l.id IS NULL""")
    assert not orphans, orphans


async def check_groups(w: World) -> None:
    """Invariant 5: a group is in one end state at most; once settled nothing of it is left half-done:
    a succeeded group's paid members are all fulfilled, a failed group's all refunded, never both."""
    for g in await sql(f"""
        SELECT g.id, g.status, g.size, g.paid_count, g.virtual, g.open_slot, g.settled_at,
               COALESCE(SUM(e.status = 'paid'), 0) AS paid,
               COALESCE(SUM(e.status = 'fulfilled'), 0) AS fulfilled,
               (SELECT COUNT(*) FROM voucher v JOIN gb_entry x ON v.source_type = 'group_order'
                  AND v.source_id = CAST(x.order_id AS CHAR) WHERE x.group_id = g.id) AS vouchers,
               (SELECT COUNT(*) FROM points_ledger_entry l
                  WHERE l.ref = CONCAT('group:', g.id, ':leader_bonus')) AS bonus,
               (SELECT COUNT(*) FROM shop_refund r JOIN gb_entry x ON x.order_id = r.order_id
                  WHERE x.group_id = g.id AND r.reason = 'group_failed') AS failure_refunds
        FROM gb_group g LEFT JOIN gb_entry e ON e.group_id = g.id
        WHERE g.campaign_id = {w.campaign_id} GROUP BY g.id"""):
        settled = g["status"] in ("succeeded", "failed")
        assert g["status"] in ("pending", "open", "succeeded", "failed"), g
        assert settled == (g["settled_at"] is not None) == (g["open_slot"] is None), g
        if g["status"] == "succeeded":
            assert g["paid_count"] == g["size"] or (
                g["virtual"] and w.virtual_min_paid is not None and g["paid_count"] >= w.virtual_min_paid), g
            assert g["paid"] == 0 and g["failure_refunds"] == 0, g
            assert g["bonus"] == (1 if w.leader_bonus else 0), g
        elif g["status"] == "failed":
            assert g["paid"] == g["fulfilled"] == g["vouchers"] == g["bonus"] == 0, g
        else:
            assert g["fulfilled"] == g["vouchers"] == g["bonus"] == g["failure_refunds"] == 0, g
    # Every paid member of a failed group has all of their money on its way back or back.
    short = await sql(f"""
        SELECT o.id, o.status, o.total_fen, o.refund_reserved_fen FROM gb_group g
        JOIN gb_entry e ON e.group_id = g.id JOIN shop_order o ON o.id = e.order_id
        WHERE g.campaign_id = {w.campaign_id} AND g.status = 'failed'
          AND e.status IN ('refunding','refunded') AND o.refund_reserved_fen <> o.total_fen""")
    assert not short, short


async def check_referrals(w: World) -> None:
    """Invariant 6: at most one reward per referee and level, only for a qualified binding; points rewards are
    in the ledger exactly while they count (credited once, reversed once)."""
    c = ids(w.customers)
    assert not await sql(f"""SELECT referee_id, level FROM referral_reward WHERE referee_id IN ({c})
                             GROUP BY referee_id, level HAVING COUNT(*) > 1""")
    for r in await sql(f"""
        SELECT r.id, r.level, r.kind, r.status, r.reversed_at, r.beneficiary_id, r.referee_id,
               b.status AS binding_status, b.referrer_id, b.referee_id AS binding_referee,
               (SELECT COUNT(*) FROM points_ledger_entry l WHERE l.ref = CONCAT('referral_reward:', r.id)) AS credits,
               (SELECT COUNT(*) FROM points_ledger_entry l
                  WHERE l.ref = CONCAT('referral_reward:', r.id, ':reversal')) AS reversals
        FROM referral_reward r JOIN referral_binding b ON b.id = r.binding_id WHERE r.referee_id IN ({c})"""):
        assert r["binding_status"] == "qualified" and r["binding_referee"] == r["referee_id"], r
        assert r["level"] in (0, 1, 2), r
        assert r["level"] != 1 or r["beneficiary_id"] == r["referrer_id"], r
        if r["kind"] == "points":
            assert r["credits"] == (1 if r["status"] == "paid" else 0), r
            assert r["reversals"] <= r["credits"] and r["reversals"] <= (r["reversed_at"] is not None), r
    lonely = await sql(f"""
        SELECT b.id FROM referral_binding b WHERE b.referee_id IN ({c}) AND b.status = 'qualified'
          AND NOT EXISTS (SELECT 1 FROM referral_reward r WHERE r.binding_id = b.id AND r.level = 1)""")
    assert not lonely, lonely


async def check_money(w: World) -> list[dict[str, Any]]:
    """Invariants 4 and 7: every fen of every order is pending, never paid (closed), kept, on its way back or
    refunded, and the money that came in (the payment log) equals what the orders say was paid."""
    orders = await sql(f"""
        SELECT o.id, o.status, o.total_fen, o.paid_fen, o.refund_reserved_fen, o.refunded_fen, o.transaction_id,
               o.paid_handled_at,
               (SELECT COALESCE(SUM(r.amount_fen), 0) FROM shop_refund r WHERE r.order_id = o.id) AS refunds,
               (SELECT COALESCE(SUM(r.amount_fen), 0) FROM shop_refund r
                  WHERE r.order_id = o.id AND r.status = 'succeeded') AS refunds_done,
               (SELECT COALESCE(SUM(p.amount_fen), 0) FROM shop_payment_event p WHERE p.out_trade_no = o.out_trade_no
                  AND p.outcome IN ('applied', 'paid_after_close')) AS money_in
        FROM shop_order o WHERE o.customer_id IN ({ids(w.customers)})""")
    buckets: Counter = Counter()
    for o in orders:
        taken = o["status"] in MONEY_TAKEN
        assert o["total_fen"] > 0, o
        assert o["paid_fen"] == (o["total_fen"] if taken else 0) == o["money_in"], o
        assert (o["transaction_id"] is not None) == taken, o
        assert 0 <= o["refunded_fen"] <= o["refund_reserved_fen"] <= o["paid_fen"], o
        assert o["refund_reserved_fen"] == o["refunds"] and o["refunded_fen"] == o["refunds_done"], o
        assert (o["status"] == "refunded") == (taken and o["refunded_fen"] == o["total_fen"]), o
        assert o["status"] != "refunding" or o["refund_reserved_fen"] == o["total_fen"], o
        buckets["pending" if o["status"] == "pending_payment" else "never_paid" if not taken else "kept"] += (
            o["total_fen"] if not taken else o["paid_fen"] - o["refund_reserved_fen"])
        buckets["refund_in_flight"] += o["refund_reserved_fen"] - o["refunded_fen"]
        buckets["refunded"] += o["refunded_fen"]
    total = sum(o["total_fen"] for o in orders)
    assert total == sum(buckets.values()), (total, buckets)
    money_in = sum(o["money_in"] for o in orders)
    assert money_in == buckets["kept"] + buckets["refund_in_flight"] + buckets["refunded"], (money_in, buckets)
    return orders


async def check_after_workers(w: World) -> None:
    """What must hold once a burst worker has emptied the queue: no paid order left unhandled, no refund left
    unconfirmed (the sandbox confirms at once), entries agree with their orders, the points room saw every fen
    an order kept, and a refunded qualifying consumption took its rewards back."""
    orders = {o["id"]: o for o in await check_money(w)}
    for o in orders.values():
        if o["status"] in ("paid", "fulfilled", "refunding"):
            assert o["paid_handled_at"] is not None or o["refunds"] == o["total_fen"], o
    unconfirmed = await sql(f"""SELECT r.id, r.status FROM shop_refund r JOIN shop_order o ON o.id = r.order_id
                               WHERE o.customer_id IN ({ids(w.customers)}) AND r.status <> 'succeeded'""")
    assert not unconfirmed, unconfirmed
    for c in await sql(f"""SELECT CAST(SUBSTRING(external_ref, 7) AS UNSIGNED) AS order_id, amount_fen, refunded_fen
                          FROM points_consumption WHERE external_ref LIKE 'order:%'
                          AND customer_id IN ({ids(w.customers)})"""):
        o = orders[c["order_id"]]
        assert c["amount_fen"] == o["paid_fen"] and c["refunded_fen"] == o["refunded_fen"], (c, o)
    # What each entry status allows of its order once the jobs ran ("released" with money taken: the payment
    # landed after the order closed, or everything was refunded before the paid job ran).
    allowed = {"held": ("pending_payment",), "released": ("closed", "refunding", "refunded"),
               "paid": ("paid", "fulfilled"), "fulfilled": ("fulfilled",), "refunding": ("refunding", "refunded"),
               "refunded": ("refunded",)}
    for e in await sql(f"""SELECT e.id, e.status, e.group_id, o.status AS order_status, g.status AS group_status
                          FROM gb_entry e JOIN shop_order o ON o.id = e.order_id
                          LEFT JOIN gb_group g ON g.id = e.group_id WHERE e.campaign_id = {w.campaign_id}"""):
        assert e["order_status"] in allowed[e["status"]], e
    for r in await sql(f"""
        SELECT r.id, r.status, r.reversed_at FROM referral_reward r
        JOIN referral_refunded_consumption x ON x.consumption_id = r.qualifying_consumption_id
        WHERE r.referee_id IN ({ids(w.customers)})"""):
        assert r["status"] in ("cancelled", "voided") or r["reversed_at"] is not None, r


# --- the machine --------------------------------------------------------------------------------------

class ClinicMachine(RuleBasedStateMachine):
    """Customers, the front desk, finance and the workers of one clinic, acting in any order."""

    env: Env  # set by the test before the machine runs

    def __init__(self) -> None:
        super().__init__()
        self.w = World()

    # -- plumbing ----------------------------------------------------------------------------------

    def run(self, coro):
        return self.env.run(coro)

    async def call(self, method: str, path: str, *, expect: tuple[int, ...], **kwargs) -> Any:
        response = await self.env.client.request(method, path, **kwargs)
        assert response.status_code < 500, (method, path, response.status_code, response.text)
        if response.status_code >= 400 and path != "/payments/wechat/notify":
            body = response.json()
            assert {"code", "message"} <= set(body), body  # every refusal in the error format
            SEEN[f"{path.split('/')[2]}:{body['code']}"] += 1
        else:
            SEEN[f"{path.split('/')[2]}:{response.status_code}"] += 1
        assert response.status_code in expect, (method, path, response.status_code, response.text)
        return response

    def customer(self, pick: int) -> int:
        return self.w.customers[pick % len(self.w.customers)]

    async def login(self, name: str, referral_code: str | None) -> int:
        body = {"code": f"sandbox:{name}"} | ({"referral_code": referral_code} if referral_code else {})
        response = await self.call("POST", "/app/auth/login", json=body, expect=(200,))
        customer_id = response.json()["customer_id"]
        if customer_id not in self.w.names:
            self.w.customers.append(customer_id)
            self.w.names[customer_id] = name
            self.w.codes[customer_id] = (await Customer.get(id=customer_id)).referral_code
            async with transaction() as conn:  # a sign-up gift, so the mall is in reach from the start
                await earn_points(conn, customer_id=customer_id, points=12, kind="campaign",
                                  ref=f"sm-gift:{customer_id}", reason="sign-up gift")
        return customer_id

    # -- set-up ---------------------------------------------------------------------------------------

    @initialize(virtual=st.sampled_from([None, 2]), bonus=st.sampled_from([0, 30]),
                item_stock=st.integers(1, 4), seats=st.integers(1, 2))
    def world(self, virtual, bonus, item_stock, seats):
        clock.set_now(datetime.now(timezone.utc).replace(microsecond=0))
        w = self.w
        w.virtual_min_paid, w.leader_bonus = virtual, bonus

        async def build() -> None:
            await make_program(hold_days=1, referrer_reward_type=ReferrerRewardType.fixed_fen,
                               referrer_reward_value=3000, min_amount_fen=20000,
                               second_level_reward_type=ReferrerRewardType.points, second_level_reward_value=40,
                               welcome_reward_type=WelcomeRewardType.points, welcome_points=15)
            w.item_id = (await make_item(points_price=5, stock_total=item_stock, voucher_valid_days=3)).id
            campaign, sku = await make_campaign(
                CampaignKind.bestie_card, stock=12, group_price_fen=9_900, group_size=3, time_limit_minutes=24 * 60,
                virtual_min_paid=virtual, leader_bonus_points=bonus, ends_at=clock.now() + timedelta(days=8),
                per_customer_limit=w.per_customer_limit)
            w.campaign_id, w.sku_id = campaign.id, sku.id
            branch, department = await make_branch(), await make_department()
            for days in (1, 3, 6):
                slot = await make_slot(branch=branch, department=department, capacity=seats,
                                       starts_at=clock.now() + timedelta(days=days, hours=2))
                w.slot_ids.append(slot.id)
            # Four customers to start with: a referral chain of three (two reward levels) and one on their own.
            first = await self.login("sm-" + secrets.token_hex(8), None)
            second = await self.login("sm-" + secrets.token_hex(8), w.codes[first])
            await self.login("sm-" + secrets.token_hex(8), w.codes[second])
            await self.login("sm-" + secrets.token_hex(8), None)

        self.run(build())

    def teardown(self) -> None:
        async def tally() -> None:  # how far the example got, for the summary printed with -s
            for row in await sql(f"""SELECT status, COUNT(*) AS n FROM gb_group
                                     WHERE campaign_id = {self.w.campaign_id} GROUP BY status"""):
                SEEN[f"end:group_{row['status']}"] += row["n"]
            for row in await sql(f"""SELECT status, COUNT(*) AS n FROM referral_reward
                                     WHERE referee_id IN ({ids(self.w.customers)}) GROUP BY status"""):
                SEEN[f"end:reward_{row['status']}"] += row["n"]
            for row in await sql(f"""SELECT status, COUNT(*) AS n FROM shop_order
                                     WHERE customer_id IN ({ids(self.w.customers)}) GROUP BY status"""):
                SEEN[f"end:order_{row['status']}"] += row["n"]

        try:
            if self.w.campaign_id:
                self.run(tally())
        finally:
            clock.set_now(None)

    # -- customers ----------------------------------------------------------------------------------

    @precondition(lambda self: len(self.w.customers) < 7)
    @rule(referrer=PICK, with_code=st.booleans())
    def new_customer_logs_in(self, referrer, with_code):
        code = self.w.codes[self.customer(referrer)] if with_code else None
        self.run(self.login("sm-" + secrets.token_hex(8), code))

    @rule(who=PICK, referrer=PICK)
    def customer_logs_in_again_with_a_code(self, who, referrer):
        customer_id = self.customer(who)
        self.run(self.login(self.w.names[customer_id], self.w.codes[self.customer(referrer)]))

    @rule(who=PICK, taps=st.integers(1, 3))
    def check_in(self, who, taps):
        headers = customer_headers(self.customer(who))

        async def tap():
            return await self.call("POST", "/app/check-ins", headers=headers, expect=(201, 409))

        async def taps_at_once():
            return await asyncio.gather(*[tap() for _ in range(taps)])

        codes = Counter(r.status_code for r in self.run(taps_at_once()))
        assert codes[201] <= 1, codes

    @rule(hours=st.sampled_from([1, 3, 20, 26, 49]), crons_fire=st.booleans())
    def time_passes(self, hours, crons_fire):
        clock.advance(timedelta(hours=hours))
        if crons_fire:
            self.run_workers(list(CRONS))

    @rule(who=PICK, amount=st.sampled_from([4_000, 20_000, 88_800, 150_000]))
    def front_desk_records_consumption(self, who, amount):
        body = {"customer_id": self.customer(who), "amount_fen": amount, "external_ref": secrets.token_hex(8)}
        response = self.run(self.call("POST", "/admin/consumptions", json=body,
                                      headers=staff_headers(self.env.desk), expect=(201,)))
        self.w.consumptions.append(response.json()["id"])

    @rule(pick=PICK, percent=st.sampled_from([10, 50, 100]))
    def front_desk_refunds_consumption(self, pick, percent):
        if not self.w.consumptions:
            return
        consumption_id = self.w.consumptions[pick % len(self.w.consumptions)]

        async def go():
            [c] = await sql(f"SELECT amount_fen, refunded_fen FROM points_consumption WHERE id = {consumption_id}")
            left = c["amount_fen"] - c["refunded_fen"]
            body = {"refunded_fen": max(1, left * percent // 100), "ref": secrets.token_hex(6)}
            await self.call("POST", f"/admin/consumptions/{consumption_id}/refund", json=body,
                            headers=staff_headers(self.env.desk), expect=(200, 409, 422))

        self.run(go())

    @rule(who=PICK, quantity=st.integers(1, 2), reuse_key=st.booleans())
    def redeem_in_the_mall(self, who, quantity, reuse_key):
        customer_id = self.customer(who)
        used = self.w.keys.setdefault(customer_id, [])
        key = used[-1][0] if reuse_key and used else secrets.token_hex(8)
        used.append((key, quantity))
        self.run(self.call("POST", "/app/mall/redemptions", json={"item_id": self.w.item_id, "quantity": quantity},
                           headers={**customer_headers(customer_id), "Idempotency-Key": key},
                           expect=(200, 201, 409)))

    @rule(who=PICK, pick=PICK, as_someone_else=st.booleans())
    def cancel_a_voucher(self, who, pick, as_someone_else):
        owner = self.customer(who)

        async def go():
            vouchers = await sql(f"SELECT id FROM voucher WHERE customer_id = {owner} ORDER BY id")
            if not vouchers:
                return
            voucher_id = vouchers[pick % len(vouchers)]["id"]
            caller = next((c for c in self.w.customers if c != owner), owner) if as_someone_else else owner
            expect = (404,) if caller != owner else (200, 404, 409)
            await self.call("POST", f"/app/vouchers/{voucher_id}/cancel", headers=customer_headers(caller),
                            expect=expect)

        self.run(go())

    @rule(who=PICK, slot=PICK)
    def book_a_visit(self, who, slot):
        customer_id = self.customer(who)
        response = self.run(self.call("POST", "/app/bookings", json={"slot_id": self.w.slot_ids[slot % 3]},
                                      headers=customer_headers(customer_id), expect=(201, 409, 422)))
        if response.status_code == 201:
            self.w.bookings.append((customer_id, response.json()["id"]))

    @rule(pick=PICK, slot=PICK, move=st.booleans())
    def cancel_or_move_a_booking(self, pick, slot, move):
        if not self.w.bookings:
            return
        customer_id, booking_id = self.w.bookings[pick % len(self.w.bookings)]
        if move:
            self.run(self.call("POST", f"/app/bookings/{booking_id}/reschedule",
                               json={"slot_id": self.w.slot_ids[slot % 3]}, headers=customer_headers(customer_id),
                               expect=(200, 409, 422)))
        else:
            self.run(self.call("POST", f"/app/bookings/{booking_id}/cancel", headers=customer_headers(customer_id),
                               expect=(200, 409)))

    async def prefer(self, query: str) -> list[int]:
        """The customers a query names (e.g. those free to act), else everybody: refusals still get tried."""
        return [r["id"] for r in await sql(query)] or self.w.customers

    @rule(who=PICK, and_pay=st.booleans())
    def open_a_bestie_group(self, who, and_pay):
        """A customer opens a group (a leader usually pays at once, then the group opens to friends)."""

        async def go():
            free = await self.prefer(f"""SELECT id FROM customer WHERE id IN ({ids(self.w.customers)}) AND id NOT IN
                (SELECT leader_id FROM gb_group WHERE campaign_id = {self.w.campaign_id}
                 AND status IN ('pending', 'open')) ORDER BY id""")
            response = await self.call("POST", "/app/groups", json={"campaign_id": self.w.campaign_id,
                                                                     "sku_id": self.w.sku_id},
                                       headers=customer_headers(free[who % len(free)]), expect=(201, 409))
            if response.status_code == 201:
                self.w.groups.append(response.json()["group_id"])
                if and_pay:
                    await self.pay(response.json()["order_id"], deliveries=1)

        self.run(go())

    @rule(pick=PICK, friends=st.lists(PICK, min_size=1, max_size=3))
    def friends_join_at_once(self, pick, friends):
        async def go():
            groups = [r["id"] for r in await sql(f"""SELECT id FROM gb_group WHERE campaign_id = {self.w.campaign_id}
                                                    AND status = 'open' ORDER BY id""")] or self.w.groups
            if not groups:
                return
            group_id = groups[pick % len(groups)]
            outside = await self.prefer(f"""SELECT id FROM customer WHERE id IN ({ids(self.w.customers)}) AND id NOT IN
                (SELECT customer_id FROM gb_entry WHERE group_id = {group_id}) ORDER BY id""")
            joiners = sorted({outside[f % len(outside)] for f in friends})
            return await asyncio.gather(*[
                self.call("POST", f"/app/groups/{group_id}/join", headers=customer_headers(c), expect=(201, 409))
                for c in joiners])

        self.run(go())

    @rule(pick=PICK, pay=st.booleans(), then_workers=st.booleans())
    def friends_fill_an_open_group(self, pick, pay, then_workers):
        """Enough friends join an open group at once to fill it, and (maybe) all pay at once."""

        async def go():
            groups = await sql(f"""SELECT id, size - seats_taken AS free FROM gb_group
                                  WHERE campaign_id = {self.w.campaign_id} AND status = 'open' ORDER BY id""")
            if not groups:
                return
            group = groups[pick % len(groups)]
            outside = await self.prefer(f"""SELECT id FROM customer WHERE id IN ({ids(self.w.customers)}) AND id NOT IN
                (SELECT customer_id FROM gb_entry WHERE group_id = {group["id"]}) ORDER BY id""")
            joined = await asyncio.gather(*[
                self.call("POST", f"/app/groups/{group['id']}/join", headers=customer_headers(c), expect=(201, 409))
                for c in outside[:max(1, group["free"])]])
            if pay:
                await asyncio.gather(*[self.pay(r.json()["order_id"], deliveries=1) for r in joined
                                       if r.status_code == 201])

        self.run(go())
        if then_workers:
            self.run_workers([])

    async def pay(self, order_id: int, *, deliveries: int) -> None:
        """WeChat Pay's signed notification for the order (sandbox keys), delivered `deliveries` times at once."""
        [o] = await sql(f"""SELECT o.out_trade_no, o.total_fen, c.openid FROM shop_order o
                           JOIN customer c ON c.id = o.customer_id WHERE o.id = {int(order_id)}""")
        notify_headers, body = default_gateway().payment_success_notification(
            out_trade_no=o["out_trade_no"], total_fen=o["total_fen"], payer_openid=o["openid"])
        await asyncio.gather(*[
            self.call("POST", "/payments/wechat/notify", headers=notify_headers, content=body, expect=(204,))
            for _ in range(deliveries)])

    @rule(pick=PICK, whose=st.sampled_from(["member", "member", "leader", "any", "closed"]),
          deliveries=st.integers(1, 3), start_payment=st.booleans(), via_sandbox_route=st.booleans(),
          then_workers=st.booleans())
    def wechat_pay_notifies(self, pick, whose, deliveries, start_payment, via_sandbox_route, then_workers):
        """A customer pays an unpaid order: a friend's seat in an open group, a leader's, any, or one just
        closed (paid at WeChat before the close reached it); WeChat delivers the signed notification once or
        several times, concurrently."""
        which = {
            "member": "o.status = 'pending_payment' AND g.status = 'open'",
            "leader": "o.status = 'pending_payment' AND g.status = 'pending'",
            "any": "o.status = 'pending_payment'",
            "closed": "o.status = 'closed'",
        }[whose]

        async def go():
            orders = await sql(f"""SELECT o.id, o.customer_id, o.out_trade_no, o.total_fen, o.status, c.openid
                                  FROM shop_order o JOIN customer c ON c.id = o.customer_id
                                  JOIN gb_entry e ON e.order_id = o.id JOIN gb_group g ON g.id = e.group_id
                                  WHERE o.customer_id IN ({ids(self.w.customers)}) AND {which} ORDER BY o.id""")
            if not orders:
                return
            o = orders[pick % len(orders)]
            headers = customer_headers(o["customer_id"])
            if start_payment:
                await self.call("POST", f"/app/orders/{o['id']}/pay", headers=headers, expect=(200, 409))
            if via_sandbox_route:
                await self.call("POST", f"/sandbox/payments/{o['out_trade_no']}/succeed", headers=headers,
                                expect=(200,))
                return
            await self.pay(o["id"], deliveries=deliveries)

        self.run(go())
        if then_workers:
            self.run_workers([])

    @rule(pick=PICK, reason=st.sampled_from(["customer_request", "service_issue", "goodwill"]),
          part=st.sampled_from([None, 1, 2_000]))
    def finance_refunds_an_order(self, pick, reason, part):
        async def go():
            orders = await sql(f"""SELECT id FROM shop_order WHERE customer_id IN ({ids(self.w.customers)})
                                  AND status IN ('paid', 'fulfilled', 'refunding') ORDER BY id""")
            if not orders:
                return
            order_id = orders[pick % len(orders)]["id"]
            body = {"reason": reason} | ({"amount_fen": part} if part else {})
            # A fresh key per rule: each is a new refund, bounded by what is left.
            await self.call("POST", f"/admin/orders/{order_id}/refunds", json=body,
                            headers=staff_headers(self.env.finance) | {"Idempotency-Key": uuid.uuid4().hex},
                            expect=(201, 409, 422))

        self.run(go())

    # -- the workers ----------------------------------------------------------------------------------

    @rule(crons=st.lists(st.sampled_from(CRONS), unique=True, max_size=len(CRONS)))
    def workers_run(self, crons):
        self.run_workers(crons)

    def run_workers(self, crons: list[str]) -> None:
        """A burst arq worker empties the queue (jobs deferred to the future are dropped, as if Redis lost
        them: the crons are what must catch up), after the crons given here were started."""

        async def go():
            for name in crons:
                await self.env.redis.enqueue_job(name, _job_id=f"sm-{name}-{secrets.token_hex(4)}",
                                                 _queue_name=QUEUE)
            totals = await run_jobs(self.env.redis)
            SEEN["workers:ran"] += 1
            if totals.jobs_failed:
                failed = [(r.function, r.args, repr(r.result)[:300]) for r in await self.env.redis.all_job_results()
                          if not r.success]
                raise AssertionError(f"{totals.jobs_failed} jobs failed: {failed}")
            await check_after_workers(self.w)

        self.run(go())

    # -- the invariants, after every step ---------------------------------------------------------------

    @invariant()
    def stock_seats_and_capacity_hold(self):
        self.run(check_stock_seats_and_capacity(self.w))

    @invariant()
    def balance_equals_ledger(self):
        self.run(check_points(self.w))

    @invariant()
    def one_end_state_per_group(self):
        self.run(check_groups(self.w))

    @invariant()
    def one_reward_per_referee_and_level(self):
        self.run(check_referrals(self.w))

    @invariant()
    def every_fen_accounted(self):
        self.run(check_money(self.w))


async def test_invariants_hold_whatever_customers_staff_and_workers_do(client, redis):
    """Hypothesis drives the machine synchronously, so it runs in a thread of its own while this loop keeps
    serving the app, the database pool and Redis; each step hands its coroutines over to this loop."""
    desk, finance = await make_staff("front_desk"), await make_staff("finance")
    ClinicMachine.env = Env(asyncio.get_running_loop(), client, redis, desk, finance)
    # CI runs a fixed, derandomized set; STATEFUL_EXAMPLES=500 explores new sequences on a developer's machine.
    explore = int(os.environ.get("STATEFUL_EXAMPLES", "0"))
    await asyncio.to_thread(
        run_state_machine_as_test,
        ClinicMachine,
        settings=settings(max_examples=explore or 20, stateful_step_count=40, deadline=None,
                          derandomize=not explore, database=None, suppress_health_check=list(HealthCheck)),
    )
    await run_jobs(redis)  # the last example's jobs, so no later test's worker meets them
    print(sorted(SEEN.items()))
