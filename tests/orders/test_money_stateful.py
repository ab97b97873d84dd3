"""Stateful property test of the money products against MariaDB: a hypothesis state machine quotes, buys with
every mix of sources (coupon, points, stored value, WeChat Pay), pays, closes unpaid orders, refunds in part
and in full, tops up, redeems and refunds card sessions, runs the workers; after every step the invariants
are read back with SQL: each source's balance equals its ledger and none is negative, an order's total is
the sum of its parts, a coupon is on one live order at most, a session is redeemed or refunded once, and no
source gives back more than it took."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
import uuid
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from kernel.db import run_in_transaction
from orders import service
from tests.factories import customer_headers, make_customer, make_staff, staff_headers
from tests.orders.factories import run_jobs
from tests.orders.shop_factories import give_coupon, give_points, give_stored_value, make_product, make_template
from tests.test_invariants_stateful import ids, sql

PICK = st.integers(min_value=0, max_value=63)
SEEN: Counter = Counter()  # what the steps met (route: status or refusal code), printed with -s
LIVE = ("pending_payment", "paid", "fulfilled", "refunding")


@dataclass
class Env:
    loop: asyncio.AbstractEventLoop
    client: Any
    redis: Any
    desk: Any
    finance: Any
    branch_id: int

    def run(self, coro, timeout: float = 120):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


@dataclass
class World:
    customers: list[int] = field(default_factory=list)
    products: list[int] = field(default_factory=list)
    topup_id: int = 0
    templates: list[int] = field(default_factory=list)


async def check(w: World) -> None:
    c = ids(w.customers)
    for row in await sql(f"""
        SELECT a.customer_id, a.principal_fen, a.bonus_fen,
               COALESCE(SUM(e.principal_delta), 0) AS p, COALESCE(SUM(e.bonus_delta), 0) AS b
        FROM shop_stored_value_account a LEFT JOIN shop_stored_value_entry e ON e.customer_id = a.customer_id
        WHERE a.customer_id IN ({c}) GROUP BY a.customer_id"""):
        assert (row["principal_fen"], row["bonus_fen"]) == (row["p"], row["b"]), row
        assert row["principal_fen"] >= 0 and row["bonus_fen"] >= 0, row
    for row in await sql(f"""
        SELECT a.customer_id, a.balance, COALESCE(SUM(l.delta), 0) AS s FROM points_account a
        LEFT JOIN points_ledger_entry l ON l.customer_id = a.customer_id
        WHERE a.customer_id IN ({c}) GROUP BY a.customer_id"""):
        assert row["balance"] == row["s"] and row["balance"] >= 0, row
    for o in await sql(f"""
        SELECT o.id, o.status, o.total_fen, o.coupon_fen, o.points_cash_fen, o.points_used, o.stored_value_fen,
               o.wechat_fen, o.refund_reserved_fen, o.refunded_fen,
               (SELECT SUM(amount_fen) FROM shop_order_line WHERE order_id = o.id) AS lines_fen,
               (SELECT COALESCE(SUM(COALESCE(r.wechat_fen, r.amount_fen)), 0) FROM shop_refund r
                 WHERE r.order_id = o.id) AS wechat_back,
               (SELECT COALESCE(SUM(p.amount_fen), 0) FROM shop_refund_part p JOIN shop_refund r ON r.id = p.refund_id
                 WHERE r.order_id = o.id AND p.source = 'stored_value') AS sv_back,
               (SELECT COALESCE(SUM(p.amount_fen), 0) FROM shop_refund_part p JOIN shop_refund r ON r.id = p.refund_id
                 WHERE r.order_id = o.id AND p.source = 'points') AS points_back,
               (SELECT COALESCE(SUM(amount_fen), 0) FROM shop_refund WHERE order_id = o.id) AS refunds_fen,
               (SELECT COALESCE(-SUM(principal_delta + bonus_delta), 0) FROM shop_stored_value_entry
                 WHERE order_id = o.id AND kind IN ('spend', 'release', 'refund')) AS sv_net,
               (SELECT COALESCE(-SUM(delta), 0) FROM points_ledger_entry
                 WHERE ref = CONCAT('order_points:', o.id) OR original_ref = CONCAT('order_points:', o.id)) AS pts_net
        FROM shop_order o WHERE o.customer_id IN ({c}) AND o.list_fen IS NOT NULL"""):
        assert o["total_fen"] == o["coupon_fen"] + o["points_cash_fen"] + o["stored_value_fen"] + o["wechat_fen"], o
        assert o["lines_fen"] == o["total_fen"], o
        assert o["wechat_back"] <= o["wechat_fen"] and o["sv_back"] <= o["stored_value_fen"], o
        assert o["points_back"] <= o["points_cash_fen"], o
        assert o["refunds_fen"] == o["refund_reserved_fen"] <= o["total_fen"] - o["coupon_fen"], o
        assert o["refunded_fen"] <= o["refund_reserved_fen"], o
        assert 0 <= o["sv_net"] <= o["stored_value_fen"] and 0 <= o["pts_net"] <= o["points_used"], o
        if o["status"] == "closed":
            assert o["sv_net"] == 0 and o["pts_net"] == 0, o
    for cp in await sql(f"""
        SELECT cp.id, cp.status, cp.order_id,
               (SELECT COUNT(*) FROM shop_order o WHERE o.coupon_id = cp.id AND o.status IN {LIVE}) AS live,
               (SELECT MIN(o.id) FROM shop_order o WHERE o.coupon_id = cp.id AND o.status IN {LIVE}) AS live_order
        FROM shop_coupon cp WHERE cp.customer_id IN ({c})"""):
        assert cp["live"] <= 1, cp
        if cp["live"]:
            assert cp["status"] in ("locked", "used") and cp["order_id"] == cp["live_order"], cp
        else:
            assert cp["status"] == "available" and cp["order_id"] is None, cp
    [twice] = await sql(f"""SELECT COUNT(*) AS n FROM shop_package_session s JOIN shop_package_card k ON k.id = s.card_id
                           WHERE k.customer_id IN ({c}) AND s.redeemed_at IS NOT NULL AND s.refunded_at IS NOT NULL""")
    assert twice["n"] == 0


class MoneyMachine(RuleBasedStateMachine):
    env: Env

    def __init__(self):
        super().__init__()
        self.w = World()

    def run(self, coro):
        return self.env.run(coro)

    async def call(self, method, path, *, expect, **kwargs):
        response = await self.env.client.request(method, path, **kwargs)
        assert response.status_code in expect, (method, path, response.status_code, response.text)
        code = response.json().get("code", "") if response.status_code >= 400 else ""
        if code == "validation_failed":
            code += " " + response.json()["message"][:60]
        SEEN[f"{method} {path.split('/')[2]}/{path.split('/')[-1] if not path[-1].isdigit() else '#'}: "
             f"{response.status_code} {code}".strip()] += 1
        return response

    @initialize()
    def setup(self):
        async def go():
            for _ in range(2):
                customer = await make_customer()
                self.w.customers.append(customer.id)
                await give_points(customer.id, 30000)
                await give_stored_value(customer.id, 8000, 1000)
            for kind, price in (("course", 9000), ("package", 12001), ("product", 3333)):
                self.w.products.append((await make_product(kind, price_fen=price)).id)
            self.w.topup_id = (await make_product("topup", price_fen=5000, topup_bonus_fen=1000)).id
            self.w.templates = [(await make_template("cash_off", value_fen=700, threshold_fen=3000,
                                                     per_customer_limit=50)).id,
                                (await make_template("percent_off", discount_bp=1250, per_customer_limit=50)).id]

        self.run(go())

    @rule(who=PICK, template=PICK)
    def staff_give_a_coupon(self, who, template):
        async def go():
            await give_coupon(self.w.customers[who % 2], self.w.templates[template % 2])

        self.run(go())

    @rule(who=PICK)
    def stored_value_grows(self, who):
        self.run(give_stored_value(self.w.customers[who % 2], 3000, 500))

    def _body(self, product, quantity, coupon, use_points, max_points, use_sv):
        return {"items": [{"product_id": self.w.products[product % 3], "quantity": quantity}],
                "coupon_id": coupon, "use_points": use_points, "max_points": max_points, "use_stored_value": use_sv}

    async def _coupon(self, who, pick, fresh):
        if not fresh:
            return None
        rows = await sql(f"SELECT id FROM shop_coupon WHERE customer_id = {who} ORDER BY id")
        return rows[pick % len(rows)]["id"] if rows else None

    @rule(who=PICK, product=PICK, quantity=st.integers(1, 2), coupon=st.booleans(), pick=PICK,
          use_points=st.booleans(), max_points=st.sampled_from([None, 1, 999]), use_sv=st.booleans(),
          buy=st.booleans(), then_workers=st.booleans())
    def quote_and_maybe_buy(self, who, product, quantity, coupon, pick, use_points, max_points, use_sv, buy,
                            then_workers):
        async def go():
            customer = self.w.customers[who % 2]
            body = self._body(product, quantity, await self._coupon(customer, pick, coupon), use_points, max_points,
                              use_sv)
            headers = customer_headers(customer)
            q = await self.call("POST", "/app/orders/quote", json=body, headers=headers, expect=(200, 409, 422))
            if q.status_code == 200:
                steps = q.json()["steps"]
                assert steps[0]["change_fen"] + sum(s["change_fen"] for s in steps[1:]) == 0
            if buy:
                await self.call("POST", "/app/orders", json=body, headers=headers, expect=(201, 409, 422))
            if then_workers:
                await run_jobs(self.env.redis)

        self.run(go())

    @rule(who=PICK)
    def top_up(self, who):
        async def go():
            customer = self.w.customers[who % 2]
            await self.call("POST", "/app/orders", json={"items": [{"product_id": self.w.topup_id}]},
                            headers=customer_headers(customer), expect=(201,))

        self.run(go())

    async def _pick_order(self, pick, statuses):
        rows = await sql(f"""SELECT id, customer_id, out_trade_no FROM shop_order WHERE customer_id IN
                            ({ids(self.w.customers)}) AND status IN {statuses} ORDER BY id""")
        return rows[pick % len(rows)] if rows else None

    @rule(pick=PICK, then_workers=st.booleans())
    def customer_pays(self, pick, then_workers):
        async def go():
            o = await self._pick_order(pick, ("pending_payment", "x"))
            if o:
                await self.call("POST", f"/sandbox/payments/{o['out_trade_no']}/succeed",
                                headers=customer_headers(o["customer_id"]), expect=(200,))
            if then_workers:
                await run_jobs(self.env.redis)

        self.run(go())

    @rule(pick=PICK)
    def payment_window_ends(self, pick):
        async def go():
            o = await self._pick_order(pick, ("pending_payment", "x"))
            if o:
                closed = await run_in_transaction(lambda conn: service.close_unpaid(conn, o["id"], "expired"))
                [row] = await sql(f"SELECT stored_value_fen > 0 AS sv, points_used > 0 AS pts, coupon_id IS NOT NULL "
                                  f"AS cp FROM shop_order WHERE id = {o['id']}")
                SEEN[f"close: {closed} sv={row['sv']} points={row['pts']} coupon={row['cp']}"] += 1

        self.run(go())

    @rule(pick=PICK, part=st.sampled_from([None, 1, 1500, 4000]))
    def finance_refunds(self, pick, part):
        async def go():
            o = await self._pick_order(pick, ("paid", "fulfilled", "refunding"))
            if o:
                body = {"reason": "customer_request"} | ({"amount_fen": part} if part else {})
                await self.call("POST", f"/admin/orders/{o['id']}/refunds", json=body,
                                headers=staff_headers(self.env.finance) | {"Idempotency-Key": uuid.uuid4().hex},
                                expect=(201, 409, 422))

        self.run(go())

    @rule(pick=PICK, twice=st.booleans())
    def front_desk_redeems(self, pick, twice):
        async def go():
            cards = await sql(f"SELECT code FROM shop_package_card WHERE customer_id IN ({ids(self.w.customers)}) "
                              "ORDER BY id")
            SEEN[f"redeem with cards: {bool(cards)}"] += 1
            if cards:
                code = cards[pick % len(cards)]["code"]
                body = {"code": code, "branch_id": self.env.branch_id}
                await asyncio.gather(*[self.call("POST", "/admin/package-cards/redeem", json=body,
                                                 headers=staff_headers(self.env.desk), expect=(200, 409))
                                       for _ in range(2 if twice else 1)])

        self.run(go())

    @rule(pick=PICK, replay=st.booleans())
    def finance_refunds_unused_sessions(self, pick, replay):
        async def go():
            cards = await sql(f"SELECT id FROM shop_package_card WHERE customer_id IN ({ids(self.w.customers)}) "
                              "ORDER BY id")
            if cards:
                key = uuid.uuid4().hex
                for _ in range(2 if replay else 1):
                    await self.call("POST", f"/admin/package-cards/{cards[pick % len(cards)]['id']}/refunds",
                                    headers=staff_headers(self.env.finance) | {"Idempotency-Key": key},
                                    expect=(200, 201, 409, 422))

        self.run(go())

    @rule()
    def workers_run(self):
        async def go():
            totals = await run_jobs(self.env.redis)
            assert not totals.jobs_failed
            SEEN["workers"] += 1

        self.run(go())

    @invariant()
    def money_holds(self):
        self.run(check(self.w))


async def test_money_invariants_hold_whatever_is_bought_paid_refunded_and_redeemed(client, redis):
    from tests.booking.factories import make_branch

    desk, finance = await make_staff("front_desk"), await make_staff("finance")
    MoneyMachine.env = Env(asyncio.get_running_loop(), client, redis, desk, finance, (await make_branch()).id)
    explore = int(os.environ.get("STATEFUL_EXAMPLES", "0"))
    await asyncio.to_thread(
        run_state_machine_as_test, MoneyMachine,
        settings=settings(max_examples=explore or 15, stateful_step_count=40, deadline=None,
                          derandomize=not explore, database=None, suppress_health_check=list(HealthCheck)),
    )
    await run_jobs(redis)
    print(sorted(SEEN.items()))
