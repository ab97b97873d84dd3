"""`python -m bench.round_trips`: what a round trip to MariaDB costs the client's CPU, through aiomysql.

    python -m bench.round_trips --transactions 2000

One transaction of six INSERTs, run `--transactions` times each way on a scratch table of a scratch database
(dropped at the end): the statements one by one (BEGIN, six INSERTs, COMMIT: eight round trips), then as one
multi-statement query (BEGIN with the six, then COMMIT: two), twice each, alternating. Prints this process's
CPU (utime + stime) and wall time per transaction. The difference is what `kernel.batch` saves a hot write
per statement it sends together.

Then what a column costs: a one-row SELECT of `--columns` values read as that many columns, and the same
values as one JSON array column (`kernel.batch.packed`), `--transactions` times each, twice, alternating,
through a dict cursor as Tortoise's `execute_query` reads. Uses BENCH_MYSQL_HOST/PORT/USER/PASSWORD like
`python -m bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time

import aiomysql
import msgspec
from pymysql.constants import CLIENT

from bench.stack import MYSQL

_ROW = "INSERT INTO trip (customer_id, note, created_at) VALUES (%s, %s, NOW(6))"


async def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.round_trips")
    parser.add_argument("--transactions", type=int, default=2000)
    parser.add_argument("--statements", type=int, default=6)
    parser.add_argument("--columns", type=int, default=10)
    args = parser.parse_args()
    database = f"bench_trips_{secrets.token_hex(4)}"
    conn = await aiomysql.connect(client_flag=CLIENT.MULTI_STATEMENTS, autocommit=True, **MYSQL)
    try:
        async with conn.cursor() as cursor:
            await cursor.execute(f"CREATE DATABASE {database}")
            await cursor.execute(f"USE {database}")
            await cursor.execute("CREATE TABLE trip (id BIGINT AUTO_INCREMENT PRIMARY KEY, customer_id BIGINT,"
                                 " note VARCHAR(64), created_at DATETIME(6)) ENGINE=InnoDB")
            rows = [(n, "x" * 20) for n in range(args.statements)]
            for way in ("one by one", "together", "one by one", "together"):
                cpu, wall = time.process_time(), time.perf_counter()
                for _ in range(args.transactions):
                    if way == "one by one":
                        await conn.begin()
                        for row in rows:
                            await cursor.execute(_ROW, row)
                    else:
                        await cursor.execute(";\n".join(["BEGIN", *(cursor.mogrify(_ROW, row) for row in rows)]))
                        while await cursor.nextset():
                            pass
                    await conn.commit()
                cpu_us = (time.process_time() - cpu) / args.transactions * 1e6
                wall_us = (time.perf_counter() - wall) / args.transactions * 1e6
                print(f"{args.statements} INSERTs {way:>10}: {cpu_us:5.0f} µs CPU, {wall_us:5.0f} µs wall a transaction")
            await cursor.execute(f"DROP DATABASE {database}")
        values = [f"{n} * 1000 + %s" for n in range(args.columns)]
        wide = "SELECT " + ", ".join(f"{value} AS c{n}" for n, value in enumerate(values))
        packed = "SELECT JSON_ARRAY(" + ", ".join(values) + ") AS packed"
        async with conn.cursor(aiomysql.DictCursor) as cursor:
            for way, sql in (("columns", wide), ("one JSON", packed), ("columns", wide), ("one JSON", packed)):
                cpu = time.process_time()
                for n in range(args.transactions):
                    await cursor.execute(sql, [n] * args.columns)
                    rows = await cursor.fetchall()
                    if way == "one JSON":
                        msgspec.json.decode(rows[0]["packed"])
                cpu_us = (time.process_time() - cpu) / args.transactions * 1e6
                print(f"a row of {args.columns} values as {way:>8}: {cpu_us:5.0f} µs CPU a SELECT")
    finally:
        conn.close()


if __name__ == "__main__":
    asyncio.run(main())
