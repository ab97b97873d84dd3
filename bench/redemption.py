"""Mall redemption benchmark: many customers redeeming one hot item at once through POST /app/mall/redemptions,
compared in the same run with the raw conditional stock update through aiomysql (the floor of this work:
one `UPDATE ... WHERE stock_reserved + 1 <= stock_total` per request on the same hot row).

    /work/main/.venv/bin/python -m bench.redemption [--requests 600] [--concurrency 16,64]

The HTTP path does everything a redemption needs in one transaction: lock the customer, check the
item's terms and limits, spend points from lots, write the redemption and its voucher, reserve stock.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone

import aiomysql

from bench.harness import MYSQL, bench_stack, cli, health_baseline, http_client, machine_line, run_load
from bench.checkin import make_customers

POINTS_EACH = 10_000
PRICE = 100


async def fund(database: str, customer_ids: list[int]) -> None:
    """Give each customer points the way the ledger would: an entry, a lot and the balance (setup, not measured)."""
    conn = await aiomysql.connect(db=database, autocommit=True, **MYSQL)
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    expires = now + timedelta(days=365)
    try:
        async with conn.cursor() as cur:
            for customer_id in customer_ids:
                await cur.execute(
                    "INSERT INTO points_ledger_entry (delta, kind, ref, reason, balance_after, expires_at, detail,"
                    " occurred_at, customer_id) VALUES (%s,'campaign',%s,'bench grant',%s,%s,'{}',%s,%s)",
                    (POINTS_EACH, f"bench:{customer_id}", POINTS_EACH, expires, now, customer_id))
                entry_id = cur.lastrowid
                await cur.execute(
                    "INSERT INTO points_lot (points, remaining, earned_at, expires_at, customer_id, entry_id)"
                    " VALUES (%s,%s,%s,%s,%s,%s)", (POINTS_EACH, POINTS_EACH, now, expires, customer_id, entry_id))
                await cur.execute("UPDATE points_account SET balance=%s, lifetime_earned=%s WHERE customer_id=%s",
                                  (POINTS_EACH, POINTS_EACH, customer_id))
    finally:
        conn.close()


async def make_item(database: str, stock: int) -> int:
    conn = await aiomysql.connect(db=database, autocommit=True, **MYSQL)
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    try:
        async with conn.cursor() as cur:
            await cur.execute(
                "INSERT INTO mall_item (kind, title, description, image_urls, points_price, stock_total, stock_reserved,"
                " voucher_valid_days, branch_ids, on_shelf, sort_order, archived, created_at, updated_at)"
                " VALUES ('gift','Hot lipstick','','[]',%s,%s,0,30,'[]',1,0,0,%s,%s)", (PRICE, stock, now, now))
            return cur.lastrowid
    finally:
        conn.close()


async def main(requests: int, levels: list[int]) -> None:
    print(machine_line())
    async with bench_stack(autocommit=True) as stack:
        database, base, pool = stack.database, stack.base, stack.pool
        for concurrency in levels:
            customers = await make_customers(database, requests)
            await fund(database, customers)
            hot = await make_item(database, stock=requests)
            raw_item = await make_item(database, stock=requests)
            tokens = [stack.customer_token(i) for i in customers]
            async with http_client(base, concurrency) as http:
                async def redeem(i: int) -> int:
                    headers = {"Authorization": f"Bearer {tokens[i]}",
                               "Idempotency-Key": "bench-" + secrets.token_hex(8)}
                    response = await http.post("/app/mall/redemptions", json={"item_id": hot}, headers=headers)
                    return response.status_code

                framework = await health_baseline(http, requests=requests, concurrency=concurrency)
                via_http = await run_load("POST /app/mall/redemptions", redeem, total=requests,
                                          concurrency=concurrency)

            async def raw(_: int) -> int:
                async with pool.acquire() as conn, conn.cursor() as cur:
                    changed = await cur.execute(
                        "UPDATE mall_item SET stock_reserved = stock_reserved + 1"
                        " WHERE id = %s AND stock_reserved + 1 <= stock_total", (raw_item,))
                    return 200 if changed == 1 else 409

            via_sql = await run_load("raw conditional UPDATE (aiomysql)", raw, total=requests,
                                     concurrency=concurrency)
            print(framework.row())
            print(via_sql.row())
            print(via_http.row(via_sql))
            print()
        conn = await aiomysql.connect(db=database, **MYSQL)
        async with conn.cursor() as cur:
            await cur.execute("SELECT COUNT(*) FROM mall_item WHERE stock_reserved > stock_total OR stock_reserved < 0")
            (broken,) = await cur.fetchone()
            await cur.execute("SELECT COUNT(*) FROM points_account a WHERE a.balance <> "
                              "(SELECT COALESCE(SUM(delta),0) FROM points_ledger_entry e WHERE e.customer_id=a.customer_id)")
            (mismatched,) = await cur.fetchone()
            await cur.execute("SELECT COUNT(*) FROM mall_redemption")
            (redemptions,) = await cur.fetchone()
        conn.close()
        print(f"redemptions: {redemptions}; items over-reserved: {broken}; accounts whose balance != ledger: {mismatched}")


if __name__ == "__main__":
    cli(main, requests=600, concurrency="16,64")
