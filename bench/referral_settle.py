"""Benchmark: releasing N pending referral rewards after the hold, by the arq worker vs one bulk SQL UPDATE.

    .venv/bin/python -m bench.referral_settle [--rewards 100000] [--workers 1] [--repeat 3] [--chunk 5000]

Both paths make the same state change on the same rows (status pending → payable, payable_at set,
for every reward whose hold has ended). The rows are seeded with bulk SQL (MariaDB's sequence engine),
the worker path is the real job (`referrals.release_due_rewards`: chunks of 5000, one transaction each,
conditional `WHERE status = 'pending'` updates), run by in-process arq burst workers; then the rows are
reset and the baseline issues one `UPDATE ... WHERE status = 'pending' AND hold_until <= now` through
aiomysql.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from bench.harness import MYSQL, bench_database, bench_env, machine_line, median_of, run_jobs, sql


def _configure(database: str) -> None:
    # Settings are read once, at first import of the project: set the environment before that.
    os.environ.update(bench_env(database, ARQ_QUEUE_NAME=f"arq:bench:{database}"))





async def seed(database: str, n: int) -> float:
    """One program, n referees bound to 1000 referrers, n pending cash rewards due yesterday."""
    started = time.perf_counter()
    referrers = min(1000, n)
    await sql(
        database,
        "INSERT INTO referral_program (name, description, is_active, starts_at, binding_valid_days, "
        "qualify_within_days, min_amount_fen, hold_days, referrer_reward_type, referrer_reward_value, "
        "second_level_reward_value, welcome_reward_type, welcome_points, welcome_voucher_title, "
        "welcome_voucher_valid_days, burst_window_minutes, burst_max_referees, created_at, updated_at) "
        "VALUES ('bench', '', 1, UTC_TIMESTAMP(6) - INTERVAL 60 DAY, 30, 30, 0, 7, 'fixed_fen', 5000, 0, 'none', "
        "0, '', 30, 60, 10, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
    )
    await sql(
        database,
        "INSERT INTO customer (openid, nickname, avatar_url, gender, referral_code, created_at, last_login_at) "
        f"SELECT CONCAT('bench-', seq), CONCAT('Bench ', seq), '', 'unknown', CONCAT('B', LPAD(seq, 9, '0')), "
        f"UTC_TIMESTAMP(6), UTC_TIMESTAMP(6) FROM seq_1_to_{n + referrers}",
    )
    # Customers 1..referrers refer; the others are referees.
    await sql(
        database,
        "INSERT INTO referral_binding (program_id, referee_id, referrer_id, code, status, bound_at, expires_at, "
        "qualify_until, qualified_at, qualifying_consumption_id, qualifying_amount_fen, signals, flagged) "
        f"SELECT 1, seq, 1 + (seq % {referrers}), 'B', 'qualified', UTC_TIMESTAMP(6) - INTERVAL 20 DAY, "
        "UTC_TIMESTAMP(6) + INTERVAL 10 DAY, UTC_TIMESTAMP(6) + INTERVAL 10 DAY, UTC_TIMESTAMP(6) - INTERVAL 10 DAY, "
        f"seq, 100000, '[]', 0 FROM seq_{referrers + 1}_to_{n + referrers}",
    )
    await sql(
        database,
        "INSERT INTO referral_reward (program_id, binding_id, referee_id, beneficiary_id, level, kind, amount_fen, "
        "points, status, signals, qualifying_consumption_id, qualifying_amount_fen, cap_month, cap_counted, "
        "hold_until, cancel_reason, decision_reason, created_at) "
        "SELECT 1, b.id, b.referee_id, b.referrer_id, 1, 'cash', 5000, 0, 'pending', '[]', b.referee_id, 100000, "
        "'2026-01', 0, UTC_TIMESTAMP(6) - INTERVAL 1 DAY, '', '', UTC_TIMESTAMP(6) - INTERVAL 8 DAY "
        "FROM referral_binding b",
    )
    return time.perf_counter() - started


async def count(database: str, status: str) -> int:
    rows = await sql(database, "SELECT COUNT(*) FROM referral_reward WHERE status = %s", params=(status,))
    return int(rows[0][0])


async def reset(database: str) -> None:
    await sql(database, "UPDATE referral_reward SET status = 'pending', payable_at = NULL")


async def run_worker_path(database: str, workers: int) -> float:
    # The cron tick and any retry enqueue the same job; with more workers, more copies race.
    return await run_jobs([("referrals.release_due_rewards", ())] * workers, workers=workers)


async def run_bulk_sql(database: str) -> float:
    import aiomysql

    conn = await aiomysql.connect(db=database, autocommit=False, **MYSQL)
    try:
        started = time.perf_counter()
        async with conn.cursor() as cur:
            await cur.execute(
                "UPDATE referral_reward SET status = 'payable', payable_at = UTC_TIMESTAMP(6) "
                "WHERE status = 'pending' AND hold_until <= UTC_TIMESTAMP(6)"
            )
        await conn.commit()
        return time.perf_counter() - started
    finally:
        conn.close()


def row(name: str, n: int, seconds: float, baseline: float | None) -> str:
    ratio = f"{baseline / seconds:6.3f}" if baseline else "   -  "
    return f"{name:<44} n={n:<7} {seconds:8.2f} s  {n / seconds:10.0f} rewards/s  ratio {ratio}"


async def main(n: int, workers: int, repeat: int, chunk: int) -> None:
    print(machine_line())
    async with bench_database() as database:
        _configure(database)
        from kernel import db

        await db.migrate()
        await db.init_db()
        from campaigns.referrals import tasks

        tasks.CASH_CHUNK = chunk  # the job reads it at run time
        try:
            seeded = await seed(database, n)
            print(f"seeded {n} pending rewards with bulk SQL in {seeded:.1f} s")
            worker_runs, bulk_runs = [], []
            for _ in range(repeat):
                # Alternate the two paths on the same rows; the median of each is reported.
                await reset(database)
                worker_runs.append(await run_worker_path(database, workers))
                assert await count(database, "payable") == n, "the worker left rewards behind"
                await reset(database)
                bulk_runs.append(await run_bulk_sql(database))
                assert await count(database, "payable") == n
            print("worker runs:", " ".join(f"{s:.2f}" for s in worker_runs), "s; bulk runs:",
                  " ".join(f"{s:.2f}" for s in bulk_runs), "s")
            bulk_s, worker_s = median_of(bulk_runs), median_of(worker_runs)
            print(row("bulk SQL UPDATE (aiomysql), baseline", n, bulk_s, None))
            print(row(f"arq release job, {workers} worker(s), chunks of {chunk}", n, worker_s, bulk_s))
        finally:
            await db.close_db()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rewards", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=5000, help="cash rewards per release transaction")
    args = parser.parse_args()
    asyncio.run(main(args.rewards, args.workers, args.repeat, args.chunk))
