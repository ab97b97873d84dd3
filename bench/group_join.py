"""Group-buy benchmark: friends joining bestie-card groups of one hot campaign through POST /app/groups/{id}/join,
compared in the same run with the raw conditional stock update through aiomysql (the floor of this work:
one `UPDATE gb_sku SET stock_left = stock_left - 1 WHERE id = ? AND stock_left >= 1` on the same kind of hot row).

    /work/main/.venv/bin/python -m bench.group_join [--requests 600] [--concurrency 16,64]

Every join hits the campaign's one SKU row (stock) and its group's row (seats); four friends join each
group of five. A join is one transaction: the order, its line, the entry and the deadline job's outbox
row are inserted first, then quota, seat and stock are taken with conditional updates (hot rows last).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import aiomysql

from bench.checkin import make_customers
from bench.harness import MYSQL, bench_stack, cli, health_baseline, http_client, machine_line, run_load

GROUP_SIZE = 5


async def make_campaign(database: str, *, stock: int, leaders: list[int]) -> tuple[int, int, list[int]]:
    """A live bestie campaign, one SKU, and one open group per leader (rows written directly: setup)."""
    conn = await aiomysql.connect(db=database, autocommit=True, **MYSQL)
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    try:
        async with conn.cursor() as cur:
            await cur.execute(
                "INSERT INTO gb_campaign (kind, title, description, status, starts_at, ends_at, group_size,"
                " time_limit_minutes, per_customer_limit, new_customers_only, leader_bonus_points, voucher_valid_days,"
                " created_at, updated_at) VALUES ('bestie_card','Bench 闺蜜卡','','live',%s,%s,%s,1440,1,0,0,90,%s,%s)",
                (now - timedelta(hours=1), now + timedelta(days=1), GROUP_SIZE, now, now))
            campaign_id = cur.lastrowid
            await cur.execute(
                "INSERT INTO gb_sku (campaign_id, title, original_price_fen, group_price_fen, stock_total, stock_left,"
                " sold_units, tiers, position) VALUES (%s,'小气泡',29800,9900,%s,%s,0,'[]',0)",
                (campaign_id, stock, stock))
            sku_id = cur.lastrowid
            groups = []
            for leader in leaders:
                await cur.execute(
                    "INSERT INTO gb_group (campaign_id, sku_id, leader_id, size, seats_taken, paid_count, status,"
                    " deadline, open_slot, `virtual`, share_views, created_at)"
                    " VALUES (%s,%s,%s,%s,1,1,'open',%s,1,0,0,%s)",
                    (campaign_id, sku_id, leader, GROUP_SIZE, now + timedelta(hours=12), now))
                groups.append(cur.lastrowid)
            return campaign_id, sku_id, groups
    finally:
        conn.close()


async def main(requests: int, levels: list[int]) -> None:
    print(machine_line())
    async with bench_stack(autocommit=True) as stack:
        database = stack.database
        for concurrency in levels:
            per_group = GROUP_SIZE - 1
            leaders = await make_customers(database, requests // per_group + 1)
            joiners = await make_customers(database, requests)
            _, _, groups = await make_campaign(database, stock=requests + len(leaders), leaders=leaders)
            _, raw_sku, _ = await make_campaign(database, stock=requests, leaders=[])
            tokens = [stack.customer_token(i) for i in joiners]
            async with http_client(stack.base, concurrency) as http:
                async def join(i: int) -> int:
                    response = await http.post(f"/app/groups/{groups[i // per_group]}/join",
                                               headers={"Authorization": f"Bearer {tokens[i]}"})
                    return response.status_code

                framework = await health_baseline(http, requests=requests, concurrency=concurrency)
                via_http = await run_load("POST /app/groups/{id}/join", join, total=requests, concurrency=concurrency)

            async def raw(_: int) -> int:
                async with stack.pool.acquire() as conn, conn.cursor() as cur:
                    changed = await cur.execute(
                        "UPDATE gb_sku SET stock_left = stock_left - 1 WHERE id = %s AND stock_left >= 1", (raw_sku,))
                    return 200 if changed == 1 else 409

            via_sql = await run_load("raw conditional UPDATE (aiomysql)", raw, total=requests, concurrency=concurrency)
            print(framework.row())
            print(via_sql.row())
            print(via_http.row(via_sql))
            print()
        conn = await aiomysql.connect(db=database, **MYSQL)
        async with conn.cursor() as cur:
            await cur.execute("SELECT COUNT(*) FROM gb_sku WHERE stock_left < 0 OR stock_left > stock_total")
            (broken_stock,) = await cur.fetchone()
            await cur.execute("SELECT COUNT(*) FROM gb_group WHERE seats_taken > size")
            (overfull,) = await cur.fetchone()
            await cur.execute("SELECT COUNT(*) FROM gb_entry")
            (entries,) = await cur.fetchone()
        conn.close()
        print(f"entries: {entries}; SKUs with stock out of bounds: {broken_stock}; groups over size: {overfull}")


if __name__ == "__main__":
    cli(main, requests=600, concurrency="16,64")
