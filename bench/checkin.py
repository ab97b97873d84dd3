"""Check-in benchmark: distinct customers checking in concurrently through POST /app/check-ins, compared in the
same run with the same SQL statements issued directly through aiomysql (the database's ceiling for this work).

    /work/main/.venv/bin/python -m bench.checkin [--requests 800] [--concurrency 16,64]

The direct path runs, per check-in, the statements the service issues (captured from Tortoise's query
log): rules, today's row?, yesterday's row, insert check-in, lock customer and account, ref lookups, rules, insert
ledger entry, update balance, insert lot, all in one transaction on a pool of the server's size.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import aiomysql

from bench.harness import MYSQL, bench_stack, cli, health_baseline, http_client, machine_line, run_load


async def make_customers(database: str, count: int) -> list[int]:
    """Customers with an account, as the first login leaves them (rows written directly: setup, not measured)."""
    conn = await aiomysql.connect(db=database, autocommit=True, **MYSQL)
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    try:
        async with conn.cursor() as cur:
            rows = [(f"bench-{secrets.token_hex(10)}", "", "", "unknown", secrets.token_hex(6).upper(), now, now)
                    for _ in range(count)]
            await cur.executemany(
                "INSERT INTO customer (openid, nickname, avatar_url, gender, referral_code, created_at, last_login_at)"
                " VALUES (%s,%s,%s,%s,%s,%s,%s)", rows)
            await cur.execute("SELECT id FROM customer WHERE openid LIKE 'bench-%%' ORDER BY id DESC LIMIT %s", (count,))
            ids = [r[0] for r in await cur.fetchall()]
            await cur.executemany(
                "INSERT INTO points_account (customer_id, balance, pending, shortfall, lifetime_earned, created_at,"
                " updated_at) VALUES (%s,0,0,0,0,%s,%s)", [(i, now, now) for i in ids])
    finally:
        conn.close()
    return ids


async def direct_check_in(pool: aiomysql.Pool, customer_id: int) -> int:
    """The service's statements for one first check-in of the day, in one transaction."""
    zone = ZoneInfo("Asia/Shanghai")
    now = datetime.now(timezone.utc)
    today = now.astimezone(zone).date()
    ref = f"checkin:{customer_id}:{today.isoformat()}"
    naive = now.replace(tzinfo=None)
    expires = (datetime(today.year + 1, today.month, 1, tzinfo=zone) + timedelta(days=32)).replace(day=1)
    expires = expires.astimezone(timezone.utc).replace(tzinfo=None)
    async with pool.acquire() as conn:
        await conn.begin()
        try:
            async with conn.cursor() as cur:
                await cur.execute("SELECT * FROM points_rules WHERE id=%s LIMIT 2", (1,))
                await cur.execute("SELECT 1 FROM points_check_in WHERE customer_id=%s AND local_date=%s LIMIT 1",
                                  (customer_id, today))
                if await cur.fetchone():
                    await conn.rollback()
                    return 409
                await cur.execute("SELECT * FROM points_check_in WHERE customer_id=%s AND local_date=%s LIMIT 2",
                                  (customer_id, today - timedelta(days=1)))
                await cur.execute(
                    "INSERT INTO points_check_in (local_date, streak, day_in_cycle, points, makeup, created_at,"
                    " customer_id) VALUES (%s,1,1,5,0,%s,%s)", (today, naive, customer_id))
                await cur.execute("SELECT id FROM customer WHERE id=%s LIMIT 1 FOR UPDATE", (customer_id,))
                await cur.execute("SELECT 1 FROM points_account WHERE customer_id=%s LIMIT 1", (customer_id,))
                await cur.execute("SELECT * FROM points_account WHERE customer_id=%s LIMIT 2 FOR UPDATE", (customer_id,))
                account = await cur.fetchone()
                await cur.execute("SELECT * FROM points_ledger_entry WHERE ref=%s LIMIT 2", (ref,))
                await cur.execute("SELECT * FROM points_pending WHERE ref=%s LIMIT 2", (ref,))
                await cur.execute("SELECT * FROM points_rules WHERE id=%s LIMIT 2", (1,))
                await cur.execute(
                    "INSERT INTO points_ledger_entry (delta, kind, ref, reason, balance_after, expires_at,"
                    " original_ref, detail, occurred_at, customer_id) VALUES (5,'check_in',%s,%s,%s,%s,NULL,'{}',%s,%s)",
                    (ref, "Daily check-in (day 1 of 7, streak 1)", 5, expires, naive, customer_id))
                entry_id = cur.lastrowid
                await cur.execute(
                    "UPDATE points_account SET balance=balance+5, updated_at=%s, lifetime_earned=lifetime_earned+5"
                    " WHERE id=%s", (naive, account[0]))
                await cur.execute(
                    "INSERT INTO points_lot (points, remaining, earned_at, expires_at, customer_id, entry_id)"
                    " VALUES (5,5,%s,%s,%s,%s)", (naive, expires, customer_id, entry_id))
            await conn.commit()
            return 201
        except Exception:
            await conn.rollback()
            raise


async def main(requests: int, levels: list[int]) -> None:
    print(machine_line())
    async with bench_stack(autocommit=False) as stack:
        database = stack.database
        for concurrency in levels:
            http_ids = await make_customers(database, requests)
            direct_ids = await make_customers(database, requests)
            tokens = [stack.customer_token(i) for i in http_ids]
            async with http_client(stack.base, concurrency) as http:
                async def tap(i: int) -> int:
                    headers = {"Authorization": f"Bearer {tokens[i]}"}
                    return (await http.post("/app/check-ins", headers=headers)).status_code

                framework = await health_baseline(http, requests=requests, concurrency=concurrency)
                via_http = await run_load("POST /app/check-ins (HTTP)", tap, total=requests, concurrency=concurrency)

            async def direct(i: int) -> int:
                return await direct_check_in(stack.pool, direct_ids[i])

            via_sql = await run_load("same SQL via aiomysql", direct, total=requests, concurrency=concurrency)
            print(framework.row())
            print(via_sql.row())
            print(via_http.row(via_sql))
            print()
        conn = await aiomysql.connect(db=database, **MYSQL)
        async with conn.cursor() as cur:
            await cur.execute("SELECT COUNT(*), COUNT(DISTINCT customer_id) FROM points_check_in")
            rows, customers = await cur.fetchone()
            await cur.execute("SELECT COUNT(*) FROM points_account a WHERE a.balance <> "
                              "(SELECT COALESCE(SUM(delta),0) FROM points_ledger_entry e WHERE e.customer_id=a.customer_id)")
            (mismatched,) = await cur.fetchone()
        conn.close()
        print(f"check-ins written: {rows} for {customers} customers; accounts whose balance != ledger: {mismatched}")


if __name__ == "__main__":
    cli(main, requests=800, concurrency="16,64")
