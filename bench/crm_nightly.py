"""Benchmark: the nightly RFM scoring + segment recompute for 100,000 customers and 1,000,000 consumptions,
the worker against one bulk SQL computation of the same classes in the same run, and the segment count
preview at that size.

    .venv/bin/python -m bench.crm_nightly [--customers 100000] [--consumptions 1000000] [--repeat 3]

Seeding is bulk SQL (MariaDB's sequence engine): customers with birth dates, consumptions skewed towards
some customers over 500 days (1 in 50 refunded in full), three tags on a third, a fifth and a tenth of the
customers, and five segments. The worker path is the real job (`crm.score_customers`: id chunks of 5,000,
one aggregate query and bulk writes of scores, history and movements per chunk) run by an in-process arq
burst worker, then `crm.recompute_segment` for each segment. The baseline computes the same classes from the
same rows with INSERT ... SELECT ... GROUP BY into a score table and a history table through aiomysql, and
the two results are compared customer by customer. The preview is `POST /admin/crm/segments/preview` on a
running server (one uvicorn process), and the same count called in-process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import statistics
import time
import warnings

from bench.harness import MYSQL, bench_database, bench_env, machine_line, median_of, run_jobs, running_server, sql

SEGMENT_RULES = {
    "win-back (rfm class)": {"groups": [[{"field": "rfm_class", "op": "in",
                                          "value": ["important_winback", "important_retain"]}]]},
    "tag AND rfm OR spend": {"groups": [[{"field": "tag", "op": "in", "value": [1]}],
                                        [{"field": "rfm_class", "op": "in", "value": ["important_value"]},
                                         {"field": "spend_fen", "op": "gte", "value": 1_000_000}]]},
    "birthday month AND age band": {"groups": [[{"field": "birthday_month", "op": "in", "value": [3, 4]}],
                                               [{"field": "age_band", "op": "in", "value": ["25-34", "35-44"]}]]},
    "no visit in 180 days, tagged": {"groups": [[{"field": "last_visit_days", "op": "not_within", "value": 180}],
                                                [{"field": "tag", "op": "in", "value": [2, 3]}]]},
    "not tagged, general classes": {"groups": [[{"field": "tag", "op": "not_in", "value": [1]}],
                                               [{"field": "rfm_class", "op": "in",
                                                 "value": ["general_value", "general_development"]}]]},
}


# "DROP TABLE IF EXISTS" of a table that is not there is a MySQL note, not a problem.
warnings.filterwarnings("ignore", message="Unknown table")





async def seed(database: str, customers: int, consumptions: int) -> float:
    started = time.perf_counter()
    await sql(
        database,
        "INSERT INTO customer (openid, nickname, avatar_url, gender, birth_date, referral_code, created_at, "
        "last_login_at) SELECT CONCAT('bench-', seq), CONCAT('Bench ', seq), '', 'unknown', "
        "CASE WHEN seq % 5 = 0 THEN NULL ELSE DATE('1955-01-01') + INTERVAL ((seq * 37) % 18000) DAY END, "
        "CONCAT('B', LPAD(seq, 9, '0')), UTC_TIMESTAMP(6), UTC_TIMESTAMP(6) "
        f"FROM seq_1_to_{customers}",
    )
    # Skewed: a few customers buy often, most rarely; spread over 500 days.
    step = 200_000
    for first in range(1, consumptions + 1, step):
        last = min(consumptions, first + step - 1)
        await sql(
            database,
            "INSERT INTO points_consumption (customer_id, amount_fen, refunded_fen, source, external_ref, points, "
            "points_reversed, points_ref, occurred_at) SELECT "
            f"1 + FLOOR({customers} * POW(((seq * 7919) % 1000003) / 1000003, 2)), "
            "5000 + (seq * 31) % 400000, CASE WHEN seq % 50 = 0 THEN 5000 + (seq * 31) % 400000 ELSE 0 END, "
            "'front_desk', CONCAT('bench-', seq), 0, 0, CONCAT('consumption:bench-', seq), "
            "UTC_TIMESTAMP(6) - INTERVAL ((seq * 13) % 500) DAY - INTERVAL (seq % 86400) SECOND "
            f"FROM seq_{first}_to_{last}",
        )
    now = "UTC_TIMESTAMP(6)"
    await sql(
        database,
        *[f"INSERT INTO crm_tag (code, name, category, kind, description, created_at) VALUES "
          f"('bench:{i}', 'Bench {i}', 'bench', 'manual', '', {now})" for i in (1, 2, 3)],
        *[f"INSERT INTO crm_customer_tag (customer_id, tag_id, source, created_at) SELECT id, {tag}, 'manual', {now} "
          f"FROM customer WHERE id % {mod} = 0" for tag, mod in ((1, 3), (2, 5), (3, 10))],
    )
    return time.perf_counter() - started


async def reset_scores(database: str) -> None:
    await sql(database, "DELETE FROM crm_rfm_score", "DELETE FROM crm_rfm_history", "DELETE FROM crm_rfm_movement",
               "DELETE FROM crm_segment_member", "DELETE FROM crm_segment_event")


async def run_worker(jobs: list[tuple[str, tuple]]) -> float:
    return await run_jobs(jobs)


async def run_bulk_sql(database: str) -> float:
    """The same classes, scores and history rows as the job, in four set-based statements."""
    import aiomysql

    from kernel import clock
    from kernel.db import transaction
    from crm import rfm

    async with transaction() as conn:
        s = await rfm.scoring_for(conn)
    offset = int(clock.now().astimezone(clock.clinic_zone()).utcoffset().total_seconds())
    naive = lambda t: t.astimezone(clock.timezone.utc).replace(tzinfo=None)  # noqa: E731
    conn = await aiomysql.connect(db=database, autocommit=False, **MYSQL)
    try:
        started = time.perf_counter()
        async with conn.cursor() as cur:
            await cur.execute("DROP TABLE IF EXISTS bench_rfm_agg")
            await cur.execute(
                "CREATE TABLE bench_rfm_agg ENGINE=InnoDB AS SELECT a.customer_id, a.last_at, "
                "DATEDIFF(%s, DATE(a.last_at + INTERVAL %s SECOND)) AS recency_days, a.frequency, a.monetary, "
                "CONCAT(CASE WHEN a.monetary >= %s THEN 'important_' ELSE 'general_' END, "
                "CASE WHEN DATEDIFF(%s, DATE(a.last_at + INTERVAL %s SECOND)) <= %s "
                "THEN (CASE WHEN a.frequency >= %s THEN 'value' ELSE 'development' END) "
                "ELSE (CASE WHEN a.frequency >= %s THEN 'retain' ELSE 'winback' END) END) AS rfm_class "
                "FROM (SELECT customer_id, MAX(CASE WHEN amount_fen > refunded_fen THEN occurred_at END) AS last_at, "
                "SUM(CASE WHEN occurred_at >= %s AND amount_fen > refunded_fen THEN 1 ELSE 0 END) AS frequency, "
                "SUM(CASE WHEN occurred_at >= %s THEN amount_fen - refunded_fen ELSE 0 END) AS monetary "
                "FROM points_consumption WHERE occurred_at < %s GROUP BY customer_id) a "
                "JOIN customer c ON c.id = a.customer_id AND c.deleted_at IS NULL WHERE a.last_at IS NOT NULL",
                (s.as_of, offset, s.monetary_min_fen, s.as_of, offset, s.recency_days, s.frequency_min,
                 s.frequency_min, naive(s.window_start), naive(s.window_start), naive(s.until)),
            )
            await cur.execute("DROP TABLE IF EXISTS bench_rfm_score")
            await cur.execute("CREATE TABLE bench_rfm_score LIKE crm_rfm_score")
            await cur.execute(
                "INSERT INTO bench_rfm_score (customer_id, as_of, last_consumption_at, recency_days, frequency, "
                "monetary_fen, rfm_class, previous_class) SELECT customer_id, %s, last_at, recency_days, frequency, "
                "monetary, rfm_class, NULL FROM bench_rfm_agg", (s.as_of,))
            await cur.execute("DROP TABLE IF EXISTS bench_rfm_history")
            await cur.execute("CREATE TABLE bench_rfm_history LIKE crm_rfm_history")
            await cur.execute(
                "INSERT INTO bench_rfm_history (customer_id, as_of, rfm_class, recency_days, frequency, monetary_fen) "
                "SELECT customer_id, %s, rfm_class, recency_days, frequency, monetary FROM bench_rfm_agg", (s.as_of,))
        await conn.commit()
        return time.perf_counter() - started
    finally:
        conn.close()


async def mismatches(database: str) -> tuple[int, int, int]:
    rows = await sql(
        database,
        "SELECT (SELECT COUNT(*) FROM crm_rfm_score), (SELECT COUNT(*) FROM bench_rfm_score), "
        "(SELECT COUNT(*) FROM crm_rfm_score s LEFT JOIN bench_rfm_score b ON b.customer_id = s.customer_id "
        "WHERE b.customer_id IS NULL OR b.rfm_class <> s.rfm_class OR b.frequency <> s.frequency "
        "OR b.monetary_fen <> s.monetary_fen OR b.recency_days <> s.recency_days)",
    )
    return tuple(int(x) for x in rows[0])  # type: ignore[return-value]


async def preview_timings(repeat: int) -> tuple[dict[str, list[float]], dict[str, float]]:
    """In-process wall times per rule, and MariaDB's CPU per preview when the server is the benchmark's own.

    The CPU figure is read from /proc for the server named by BENCH_MARIADB_PIDFILE (bench/private-mariadb.sh):
    only this benchmark's statements run there, so it is the work one preview costs the database, which
    other engineers' load on a shared machine does not inflate the way it inflates wall times.
    """
    from bench.load import _proc_cpu_ms
    from crm import segments
    from kernel.db import transaction

    pidfile = os.environ.get("BENCH_MARIADB_PIDFILE")
    db_pid = int(open(pidfile).read().split()[0]) if pidfile else None
    out: dict[str, list[float]] = {}
    db_cpu: dict[str, float] = {}
    for name, rule in SEGMENT_RULES.items():
        times = []
        cpu_before = _proc_cpu_ms(db_pid) if db_pid else 0.0
        for _ in range(repeat):
            started = time.perf_counter()
            async with transaction() as conn:
                await segments.count(conn, segments.normalise(rule))
            times.append((time.perf_counter() - started) * 1000)
        out[name] = times
        if db_pid:
            db_cpu[name] = (_proc_cpu_ms(db_pid) - cpu_before) / repeat
    return out, db_cpu


async def http_preview_timings(database: str, repeat: int) -> dict[str, list[float]]:
    import httpx

    from kernel.db import transaction
    from kernel.identity.service import create_staff
    from kernel.identity.tokens import issue_staff_token

    async with transaction() as conn:
        staff = await create_staff(conn, username=f"bench{secrets.token_hex(3)}", password="bench-password-1",
                                   roles=["campaign"])
    token = issue_staff_token(staff.id, staff.role_set, staff.token_version)[0]
    out: dict[str, list[float]] = {}
    async with running_server(bench_env(database)) as base:
        async with httpx.AsyncClient(base_url=base, timeout=30, headers={"Authorization": f"Bearer {token}"}) as http:
            for name, rule in SEGMENT_RULES.items():
                times = []
                for _ in range(repeat + 1):
                    started = time.perf_counter()
                    response = await http.post("/admin/crm/segments/preview", json=rule)
                    times.append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 200, response.text
                out[name] = times[1:]  # the first call warms the connection pool
    return out


async def previews_only(database: str) -> None:
    """Re-measure the previews on a database kept by an earlier run (--keep), without seeding again."""
    os.environ.update(bench_env(database))
    from kernel import db

    await db.migrate()
    await db.init_db()
    try:
        await print_previews(database)
    finally:
        await db.close_db()


async def print_previews(database: str) -> None:
    repeat = int(os.environ.get("BENCH_PREVIEW_REPEAT", "5"))
    inproc, db_cpu = await preview_timings(repeat)
    over_http = await http_preview_timings(database, repeat)
    for name in SEGMENT_RULES:
        cpu = f" | MariaDB CPU {db_cpu[name]:6.1f} ms" if name in db_cpu else ""
        print(f"preview {name:<32} in-process median {statistics.median(inproc[name]):7.1f} ms "
              f"max {max(inproc[name]):7.1f} ms | HTTP median {statistics.median(over_http[name]):7.1f} ms "
              f"max {max(over_http[name]):7.1f} ms{cpu}")


@contextlib.asynccontextmanager
async def kept_database():
    from bench.harness import mysql_admin

    name = f"clinic_bench_{secrets.token_hex(4)}"
    await mysql_admin(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    print(f"keeping database {name} (drop it when done)")
    yield name


async def main(customers: int, consumptions: int, repeat: int, keep: bool) -> None:
    print(machine_line())
    async with (kept_database() if keep else bench_database()) as database:
        os.environ.update(bench_env(database))
        from kernel import db

        await db.migrate()
        await db.init_db()
        try:
            seeded = await seed(database, customers, consumptions)
            print(f"seeded {customers} customers, {consumptions} consumptions with bulk SQL in {seeded:.1f} s")
            from crm import segments
            from kernel.db import transaction

            segment_ids = []
            async with transaction() as conn:
                for name, rule in SEGMENT_RULES.items():
                    segment_ids.append((await segments.create_segment(conn, name=name, description="", rules=rule,
                                                                      staff_id=None)).id)
            score_runs, segment_runs, bulk_runs = [], [], []
            for _ in range(repeat):
                await reset_scores(database)
                score_runs.append(await run_worker([("crm.score_customers", ())]))
                segment_runs.append(await run_worker([("crm.recompute_segment", (sid,)) for sid in segment_ids]))
                bulk_runs.append(await run_bulk_sql(database))
                scored, bulk, differ = await mismatches(database)
                assert scored == bulk and differ == 0, (scored, bulk, differ)
            print(f"scored customers: {scored}, bulk SQL: {bulk}, customers whose class or figures differ: {differ}")
            members = await sql(database, "SELECT segment_id, COUNT(*) FROM crm_segment_member GROUP BY segment_id")
            print("segment members:", {int(k): int(v) for k, v in members})
            print("worker scoring runs:", " ".join(f"{x:.2f}" for x in score_runs), "s")
            print("worker segment recompute runs (5 segments):", " ".join(f"{x:.2f}" for x in segment_runs), "s")
            print("bulk SQL runs:", " ".join(f"{x:.2f}" for x in bulk_runs), "s")
            w, b, sg = median_of(score_runs), median_of(bulk_runs), median_of(segment_runs)
            print(f"RFM: worker {w:.2f} s ({customers / w:.0f} customers/s), bulk SQL {b:.2f} s, "
                  f"ratio bulk/worker {b / w:.2f}")
            print(f"segment recompute: {sg:.2f} s for {len(segment_ids)} segments; nightly total {w + sg:.2f} s")
            await print_previews(database)
        finally:
            await db.close_db()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--consumptions", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the seeded database (for --previews-only)")
    parser.add_argument("--previews-only", metavar="DATABASE", help="only time the previews on a kept database")
    args = parser.parse_args()
    if args.previews_only:
        asyncio.run(previews_only(args.previews_only))
    else:
        asyncio.run(main(args.customers, args.consumptions, args.repeat, args.keep))
