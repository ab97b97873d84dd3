"""Checkout benchmark: customers buy a catalogue product with every source at once (a coupon, points as cash,
stored value, WeChat Pay for the rest) through POST /app/orders, compared in the same run with the same
writes issued directly through aiomysql, one transaction each (lock the customer, take the coupon with its
conditional update, debit points and stored value with theirs and write their ledger rows, insert the order,
its line and its close-unpaid outbox row).

    /work/main/.venv/bin/python -m bench.checkout [--requests 400] [--concurrency 16,64]

Afterwards every stored-value account and points account is checked against its ledger.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta, timezone

import aiomysql

from bench.checkin import make_customers
from bench.harness import MYSQL, bench_stack, cli, health_baseline, http_client, machine_line, run_load
from bench.redemption import fund

PRICE = 20_000
STORED_VALUE = 5_000


async def setup(database: str, customers: list[int]) -> tuple[int, dict[int, int], dict[int, int]]:
    """A product, a 满减 coupon per customer (two: one for each path), and stored value (setup, not measured)."""
    conn = await aiomysql.connect(db=database, autocommit=True, **MYSQL)
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    try:
        async with conn.cursor() as cur:
            await cur.execute(
                "INSERT INTO shop_product (kind, name, category, description, price_fen, items, topup_bonus_fen,"
                " is_active, created_at, updated_at) VALUES ('product','Bench serum','skincare','',%s,'[]',0,1,%s,%s)",
                (PRICE, now, now))
            product = cur.lastrowid
            await cur.execute(
                "INSERT INTO shop_coupon_template (name, kind, value_fen, threshold_fen, discount_bp, product_ids,"
                " categories, valid_days, per_customer_limit, claimable, is_active, created_at, updated_at)"
                " VALUES ('bench 满减','cash_off',2000,10000,0,'[]','[]',30,9,0,1,%s,%s)", (now, now))
            template = cur.lastrowid
            coupons: list[dict[int, int]] = [{}, {}]
            for path in (0, 1):
                for customer in customers:
                    await cur.execute(
                        "INSERT INTO shop_coupon (template_id, customer_id, source, source_ref, status, valid_from,"
                        " valid_until, created_at) VALUES (%s,%s,'staff',%s,'available',%s,%s,%s)",
                        (template, customer, f"bench-{path}", now, now + timedelta(days=30), now))
                    coupons[path][customer] = cur.lastrowid
            for customer in customers:
                await cur.execute("INSERT INTO shop_stored_value_account (customer_id, principal_fen, bonus_fen,"
                                  " updated_at) VALUES (%s,0,0,%s)", (customer, now))
        await refill(database, customers, "http")
        return product, coupons[0], coupons[1]
    finally:
        conn.close()


async def refill(database: str, customers: list[int], path: str) -> None:
    """STORED_VALUE of principal for each customer, so each path spends exactly that (setup, not measured)."""
    conn = await aiomysql.connect(db=database, autocommit=True, **MYSQL)
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    try:
        async with conn.cursor() as cur:
            for customer in customers:
                await cur.execute("UPDATE shop_stored_value_account SET principal_fen = principal_fen + %s"
                                  " WHERE customer_id = %s", (STORED_VALUE, customer))
                await cur.execute("INSERT INTO shop_stored_value_entry (customer_id, kind, principal_delta,"
                                  " bonus_delta, ref, created_at) VALUES (%s,'topup',%s,0,%s,%s)",
                                  (customer, STORED_VALUE, f"bench:{path}:{customer}", now))
    finally:
        conn.close()


async def raw_checkout(pool, customer: int, coupon: int, product: int) -> int:
    """The checkout's writes without the framework, the ORM, the quote or the checks between them."""
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    async with pool.acquire() as conn:
        await conn.begin()
        try:
            async with conn.cursor() as cur:
                await cur.execute("SELECT id FROM customer WHERE id=%s FOR UPDATE", (customer,))
                await cur.execute("SELECT balance FROM points_account WHERE customer_id=%s FOR UPDATE", (customer,))
                await cur.execute("INSERT INTO shop_order (customer_id, out_trade_no, description, total_fen, status,"
                                  " expires_at, paid_fen, refund_reserved_fen, refunded_fen, close_reason, created_at,"
                                  " list_fen, member_discount_fen, coupon_id, coupon_fen, points_used, points_cash_fen,"
                                  " stored_value_fen, wechat_fen) VALUES (%s,%s,'Bench serum',%s,'pending_payment',%s,"
                                  "0,0,0,'',%s,%s,0,%s,2000,1000,1000,%s,%s)",
                                  (customer, "RB" + secrets.token_hex(10), PRICE, now + timedelta(minutes=15), now,
                                   PRICE, coupon, STORED_VALUE, PRICE - 2000 - 1000 - STORED_VALUE))
                order = cur.lastrowid
                await cur.execute("INSERT INTO shop_order_line (order_id, kind, ref_id, title, quantity,"
                                  " unit_price_fen, amount_fen) VALUES (%s,'goods',%s,'Bench serum',1,%s,%s)",
                                  (order, product, PRICE, PRICE))
                taken = await cur.execute("UPDATE shop_coupon SET status='locked', order_id=%s WHERE id=%s AND"
                                          " customer_id=%s AND status='available'", (order, coupon, customer))
                debited = await cur.execute("UPDATE points_account SET balance=balance-1000 WHERE customer_id=%s"
                                            " AND balance>=1000", (customer,))
                await cur.execute("INSERT INTO points_ledger_entry (delta, kind, ref, reason, balance_after, detail,"
                                  " occurred_at, customer_id) VALUES (-1000,'redemption',%s,'bench',0,'{}',%s,%s)",
                                  (f"raw_points:{order}", now, customer))
                spent = await cur.execute("UPDATE shop_stored_value_account SET principal_fen=principal_fen-%s"
                                          " WHERE customer_id=%s AND principal_fen>=%s",
                                          (STORED_VALUE, customer, STORED_VALUE))
                await cur.execute("INSERT INTO shop_stored_value_entry (customer_id, kind, principal_delta,"
                                  " bonus_delta, ref, order_id, created_at) VALUES (%s,'spend',%s,0,%s,%s,%s)",
                                  (customer, -STORED_VALUE, f"raw_spend:{order}", order, now))
                await cur.execute("INSERT INTO outbox_message (job_name, args, run_at, created_at, attempts, last_error)"
                                  " VALUES ('bench.noop',%s,%s,%s,0,'')", (json.dumps([order]), now, now))
            if not (taken and debited and spent):
                await conn.rollback()
                return 409
            await conn.commit()
            return 201
        except Exception:
            await conn.rollback()
            raise


async def main(requests: int, levels: list[int]) -> None:
    print(machine_line())
    async with bench_stack(autocommit=False) as stack:
        database, base, pool = stack.database, stack.base, stack.pool
        for concurrency in levels:
            customers = await make_customers(database, requests)
            await fund(database, customers)
            product, http_coupons, raw_coupons = await setup(database, customers)
            tokens = {c: stack.customer_token(c) for c in customers}
            async with http_client(base, concurrency) as http:
                async def buy(i: int) -> int:
                    customer = customers[i]
                    body = {"items": [{"product_id": product}], "coupon_id": http_coupons[customer],
                            "use_points": True, "max_points": 1000, "use_stored_value": True}
                    response = await http.post("/app/orders", json=body,
                                               headers={"Authorization": f"Bearer {tokens[customer]}"})
                    return response.status_code

                framework = await health_baseline(http, requests=requests, concurrency=concurrency)
                via_http = await run_load("POST /app/orders (all sources)", buy, total=requests,
                                          concurrency=concurrency)

            await refill(database, customers, "raw")
            failures: list[str] = []

            async def raw(i: int) -> int:
                try:
                    return await raw_checkout(pool, customers[i], raw_coupons[customers[i]], product)
                except Exception as exc:  # shown once below: a broken baseline must not pass for a slow one
                    failures.append(repr(exc)[:300])
                    raise

            via_sql = await run_load("same writes (aiomysql)", raw, total=requests, concurrency=concurrency)
            print(framework.row())
            print(via_sql.row())
            print(via_http.row(via_sql))
            if failures:
                print(f"baseline failures: {len(failures)}, first: {failures[0]}")
            print()
        conn = await aiomysql.connect(db=database, **MYSQL)
        async with conn.cursor() as cur:
            await cur.execute("SELECT COUNT(*) FROM shop_stored_value_account a WHERE principal_fen < 0 OR bonus_fen < 0"
                              " OR principal_fen + bonus_fen <> (SELECT COALESCE(SUM(principal_delta + bonus_delta), 0)"
                              " FROM shop_stored_value_entry e WHERE e.customer_id = a.customer_id)")
            (broken,) = await cur.fetchone()
            await cur.execute("SELECT COUNT(*) FROM shop_order WHERE list_fen IS NOT NULL AND total_fen <>"
                              " coupon_fen + points_cash_fen + stored_value_fen + wechat_fen")
            (unbalanced,) = await cur.fetchone()
        conn.close()
        print(f"stored-value accounts off their ledger or negative: {broken}; orders whose parts do not add up:"
              f" {unbalanced}")


if __name__ == "__main__":
    cli(main, requests=400, concurrency="16,64")
