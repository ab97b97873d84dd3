"""Benchmark: every report at 100,000 customers and 1,000,000 consumptions, and the summary fold's cost per
new row against a bulk SQL recomputation of the same tables in the same run.

    .venv/bin/python -m bench.reports [--customers 100000] [--consumptions 1000000] [--new 20000] [--repeat 3]

Seeding is bulk SQL (MariaDB's sequence engine) over 500 clinic days: customers with acquisition sources,
three branches, consumptions skewed towards some customers (1 in 50 refunded in full, with its refund row),
bookings on their own slots with doctors (a third consultations, some no-shows) and surveys, points
accounts, ledger entries and lots, mall redemptions, redeemed vouchers with their audit rows, group-buy
campaigns with groups, entries and orders, referral rewards, and the CRM's RFM scores and movements.

Then, in one run:
1. the bulk recomputation (`reports.summaries.rebuild`: INSERT ... SELECT ... GROUP BY over every source),
   timed whole and for the consumption family alone;
2. `--new` more consumptions and a refund per 50 of them arrive, and the fold job (`reports.fold`, run by an
   in-process arq burst worker as the cron runs it) folds them; its time per new row is set against the bulk
   recomputation's time per row; the folded tables are then checked equal to a fresh rebuild;
3. each report is asked `--repeat` times (after one warm-up) over the last month and the last 12 months,
   through `GET /admin/reports/<report>` on a running server (one uvicorn process), sequentially; the
   12-month CSV export too. Latency is wall time at the client for one request at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import time
import warnings
from datetime import timedelta

from bench.harness import bench_database, bench_env, machine_line, median_of, run_jobs, running_server, sql

warnings.filterwarnings("ignore", message="Unknown table")
NOW = "UTC_TIMESTAMP(6)"
DAYS = 500





def _chunks(total: int, step: int = 200_000):
    for first in range(1, total + 1, step):
        yield first, min(total, first + step - 1)


async def seed(database: str, customers: int, consumptions: int) -> float:
    started = time.perf_counter()
    def ago(expr: str, key: str = "seq") -> str:
        return f"{NOW} - INTERVAL ({expr}) % {DAYS} DAY - INTERVAL (({key} * 7) % 86400) SECOND"

    await sql(
        database,
        "INSERT INTO customer (openid, nickname, avatar_url, gender, referral_code, created_at, last_login_at) "
        f"SELECT CONCAT('bench-', seq), CONCAT('Bench ', seq), '', 'unknown', CONCAT('B', LPAD(seq, 9, '0')), {NOW}, "
        f"{NOW} FROM seq_1_to_{customers}",
        # 12% customer referral, the rest spread over staff, partner, ad and organic.
        "INSERT INTO crm_acquisition (customer_id, kind, code, acquired_at) SELECT seq, "
        "ELT(1 + (seq % 25), 'customer_referral', 'customer_referral', 'customer_referral', 'staff', 'staff', "
        "'partner', 'ad', 'ad', 'ad', 'ad', 'organic', 'organic', 'organic', 'organic', 'organic', 'organic', "
        "'organic', 'organic', 'organic', 'organic', 'organic', 'organic', 'organic', 'organic', 'organic'), '', "
        f"{ago('seq * 11')} FROM seq_1_to_{customers}",
        *[f"INSERT INTO booking_branch (code, name, address, phone, timezone, is_active, created_at) VALUES "
          f"('b{i}', 'Branch {i}', '', '', 'Asia/Shanghai', 1, {NOW})" for i in (1, 2, 3)],
        *[f"INSERT INTO booking_department (code, name, description, sort_order, is_active, created_at) VALUES "
          f"('d{i}', 'Dept {i}', '', {i}, 1, {NOW})" for i in (1, 2)],
        "INSERT INTO booking_service (name, description, duration_minutes, price_fen, requires_consultation, "
        f"is_active, created_at, department_id) VALUES ('Consult', '', 30, 0, 1, 1, {NOW}, 1), "
        f"('Laser', '', 30, 100000, 0, 1, {NOW}, 2)",
        "INSERT INTO booking_practitioner (name, title, is_active, created_at, branch_id, department_id) "
        f"SELECT CONCAT('Dr ', b.seq, '-', d.seq), '', 1, {NOW}, b.seq, d.seq FROM seq_1_to_3 b JOIN seq_1_to_2 d",
        "INSERT INTO booking_schedule (name, slot_minutes, capacity, valid_from, is_active, created_at, branch_id, "
        f"department_id, practitioner_id) SELECT '', 30, 1, '2020-01-01', 1, {NOW}, branch_id, department_id, id "
        "FROM booking_practitioner ORDER BY id",
    )
    for first, last in _chunks(consumptions):
        await sql(
            database,
            "INSERT INTO points_consumption (customer_id, amount_fen, refunded_fen, source, external_ref, branch_id, "
            "points, points_reversed, points_ref, occurred_at) SELECT "
            f"1 + FLOOR({customers} * POW(((seq * 7919) % 1000003) / 1000003, 2)), 5000 + (seq * 31) % 400000, "
            "CASE WHEN seq % 50 = 0 THEN 5000 + (seq * 31) % 400000 ELSE 0 END, 'front_desk', CONCAT('bench-', seq), "
            f"1 + seq % 3, 0, 0, CONCAT('consumption:bench-', seq), {ago('seq * 13')} "
            f"FROM seq_{first}_to_{last}",
        )
    bookings = consumptions // 5
    await sql(
        database,
        "INSERT INTO points_consumption_refund (ref, refunded_fen, points_reversed, created_at, consumption_id) "
        "SELECT CONCAT('refund-', id), refunded_fen, 0, occurred_at + INTERVAL 1 DAY, id FROM points_consumption "
        "WHERE refunded_fen > 0",
        # One slot per booking (schedule = branch x department x doctor), 30-minute steps back from now.
        "INSERT INTO booking_slot (starts_at, ends_at, local_date, capacity, booked, status, branch_id, department_id, "
        "schedule_id, practitioner_id) SELECT t, t + INTERVAL 30 MINUTE, DATE(t + INTERVAL 8 HOUR), 1, 1, 'open', "
        "s.branch_id, s.department_id, s.id, s.practitioner_id FROM (SELECT seq, "
        f"{NOW} - INTERVAL (seq * 30) MINUTE AS t, 1 + seq % 6 AS sid FROM seq_1_to_{bookings}) x "
        "JOIN booking_schedule s ON s.id = x.sid",
        "INSERT INTO booking_booking (branch_id, department_id, starts_at, ends_at, local_date, needs_review, status, "
        "note, remind, reschedule_count, created_at, customer_id, slot_id, service_id, completed_at) "
        "SELECT branch_id, department_id, starts_at, ends_at, local_date, 0, "
        "ELT(1 + id % 10, 'completed', 'completed', 'completed', 'completed', 'completed', 'completed', 'no_show', "
        "'cancelled', 'completed', 'arrived'), '', 1, 0, starts_at - INTERVAL 2 DAY, "
        f"1 + (id * 37) % {customers}, id, department_id, "
        "CASE WHEN id % 10 IN (0, 1, 2, 3, 4, 5, 8) THEN starts_at + INTERVAL 1 HOUR END FROM booking_slot",
        "INSERT INTO booking_survey (customer_id, score, comment, created_at, booking_id) SELECT customer_id, "
        "1 + id % 5, '', completed_at + INTERVAL 1 DAY, id FROM booking_booking WHERE status = 'completed' AND id % 4 = 0",
        f"INSERT INTO points_account (balance, pending, shortfall, lifetime_earned, created_at, updated_at, customer_id) "
        f"SELECT 300, 10, 0, 300, {NOW}, {NOW}, seq FROM seq_1_to_{customers}",
        "INSERT INTO points_ledger_entry (delta, kind, ref, reason, balance_after, detail, occurred_at, customer_id, "
        f"expires_at) SELECT 100, 'check_in', CONCAT('bench-', seq), '', 100, '{{}}', {ago('seq * 17')}, "
        f"1 + (seq - 1) % {customers}, {NOW} + INTERVAL (seq % 120) DAY FROM seq_1_to_{3 * customers}",
        "INSERT INTO points_lot (points, remaining, earned_at, customer_id, entry_id, expires_at) "
        "SELECT delta, delta, occurred_at, customer_id, id, expires_at FROM points_ledger_entry",
        "INSERT INTO mall_redemption (idempotency_key, quantity, unit_points, points_spent, item_title, item_kind, "
        "status, cancelled_quantity, ledger_ref, created_at, customer_id, item_id) SELECT CONCAT('k', seq), "
        f"1 + seq % 3, 100, 100 * (1 + seq % 3), 'Gift', 'gift', 'active', seq % 7 = 0, CONCAT('m', seq), "
        f"{ago('seq * 19')}, 1 + seq % {customers}, 1 FROM seq_1_to_{customers // 5}",
        "INSERT INTO voucher (code, source_type, source_id, seq, title, status, valid_until, branch_ids, issued_at, "
        "cancel_reason, customer_id, redeemed_at, redeemed_branch_id) SELECT CONCAT('V', LPAD(seq, 15, '0')), "
        f"ELT(1 + seq % 3, 'mall_redemption', 'group_order', 'referral_welcome'), seq, 1, 'V', 'redeemed', {NOW}, "
        f"'[]', {NOW} - INTERVAL 600 DAY, cancel_reason_placeholder, 1 + seq % {customers}, {ago('seq * 23')}, "
        f"1 + seq % 3 FROM seq_1_to_{customers // 5}".replace("cancel_reason_placeholder", "''"),
        "INSERT INTO audit_log (action, target_type, target_id, detail, request_id, created_at) "
        "SELECT 'voucher.redeem', 'voucher', id, '{}', '', redeemed_at FROM voucher ORDER BY id",
        "INSERT INTO gb_campaign (kind, title, description, status, starts_at, ends_at, group_size, time_limit_minutes, "
        "per_customer_limit, new_customers_only, leader_bonus_points, voucher_valid_days, created_at, updated_at) "
        f"SELECT 'bestie_card', CONCAT('Campaign ', seq), '', 'ended', {NOW} - INTERVAL (seq * 20) DAY, "
        f"{NOW} - INTERVAL (seq * 20 - 14) DAY, 3, 1440, 1, 0, 0, 90, {NOW}, {NOW} FROM seq_1_to_20",
        "INSERT INTO gb_sku (title, original_price_fen, group_price_fen, stock_total, stock_left, sold_units, tiers, "
        "position, campaign_id) SELECT 'S', 20000, 9900, 100000, 50000, 0, '[]', 0, id FROM gb_campaign",
        "INSERT INTO gb_group (sku_id, leader_id, size, seats_taken, paid_count, status, deadline, `virtual`, "
        "share_views, created_at, campaign_id) SELECT 1 + seq % 20, 1 + seq % 1000, 3, 3, 3, "
        f"ELT(1 + seq % 4, 'succeeded', 'succeeded', 'failed', 'open'), {NOW}, seq % 9 = 0, seq % 40, {NOW}, "
        f"1 + seq % 20 FROM seq_1_to_{customers // 10}",
        "INSERT INTO shop_order (out_trade_no, description, total_fen, status, expires_at, paid_fen, refund_reserved_fen, "
        f"refunded_fen, close_reason, created_at, customer_id) SELECT CONCAT('O', seq), 'g', 9900, 'paid', {NOW}, 9900, "
        f"0, CASE WHEN seq % 13 = 0 THEN 9900 ELSE 0 END, '', {NOW}, 1 + seq % {customers} "
        f"FROM seq_1_to_{3 * customers // 10}",
        "INSERT INTO gb_entry (campaign_id, sku_id, customer_id, order_id, role, quantity, unit_price_fen, status, "
        "created_at, group_id, paid_at) SELECT g.campaign_id, g.sku_id, o.customer_id, o.id, "
        "IF(o.id % 3 = 1, 'leader', 'member'), 1, 9900, IF(o.refunded_fen > 0, 'refunded', 'fulfilled'), o.created_at, "
        "g.id, o.created_at FROM shop_order o JOIN gb_group g ON g.id = 1 + (o.id - 1) DIV 3",
        "INSERT INTO referral_program (name, description, is_active, starts_at, binding_valid_days, qualify_within_days, "
        "min_amount_fen, hold_days, referrer_reward_type, referrer_reward_value, second_level_reward_value, "
        "welcome_reward_type, welcome_points, welcome_voucher_title, welcome_voucher_valid_days, burst_window_minutes, "
        f"burst_max_referees, created_at, updated_at) VALUES ('P', '', 1, {NOW} - INTERVAL 600 DAY, 30, 30, 0, 7, "
        f"'fixed_fen', 5000, 0, 'none', 0, '', 30, 60, 10, {NOW}, {NOW})",
        "INSERT INTO referral_binding (code, status, bound_at, expires_at, qualify_until, signals, flagged, program_id, "
        f"referee_id, referrer_id) SELECT 'c', 'qualified', {NOW}, {NOW}, {NOW}, '[]', 0, 1, seq, seq + 1 "
        f"FROM seq_1_to_{customers // 10}",
        "INSERT INTO referral_reward (level, kind, amount_fen, points, status, signals, qualifying_consumption_id, "
        "qualifying_amount_fen, cap_month, cap_counted, hold_until, cancel_reason, decision_reason, created_at, "
        "beneficiary_id, binding_id, program_id, referee_id, paid_at) SELECT 1, 'cash', 5000, 0, 'paid', '[]', 1, "
        f"100000, '2026-01', 0, {NOW}, '', '', {NOW}, referrer_id, id, 1, referee_id, {ago('id * 29', 'id')} "
        "FROM referral_binding",
        "INSERT INTO crm_rfm_score (customer_id, as_of, last_consumption_at, recency_days, frequency, monetary_fen, "
        f"rfm_class) SELECT seq, DATE({NOW} + INTERVAL 8 HOUR), {NOW}, 1, 1, 1, ELT(1 + seq % 8, 'important_value', "
        "'important_development', 'important_retain', 'important_winback', 'general_value', 'general_development', "
        f"'general_retain', 'general_winback') FROM seq_1_to_{customers}",
        "INSERT INTO crm_rfm_movement (customer_id, as_of, from_class, to_class) SELECT seq, "
        f"DATE({NOW} + INTERVAL 8 HOUR) - INTERVAL seq % 30 DAY, 'important_value', 'important_winback' "
        f"FROM seq_1_to_{customers // 5}",
    )
    return time.perf_counter() - started


async def add_new_rows(database: str, customers: int, consumptions: int, new: int) -> None:
    """`new` consumptions in the last day (ids after the seeded ones) and a refund per 50 of them."""
    await sql(
        database,
        "INSERT INTO points_consumption (customer_id, amount_fen, refunded_fen, source, external_ref, branch_id, "
        "points, points_reversed, points_ref, occurred_at) SELECT "
        f"1 + FLOOR({customers} * POW(((seq * 7919) % 1000003) / 1000003, 2)), 5000 + (seq * 31) % 400000, "
        f"CASE WHEN seq % 50 = 0 THEN 5000 ELSE 0 END, 'front_desk', CONCAT('new-', seq), 1 + seq % 3, 0, 0, "
        f"CONCAT('consumption:new-', seq), {NOW} - INTERVAL (seq % 86000) SECOND FROM seq_1_to_{new}",
        "INSERT INTO points_consumption_refund (ref, refunded_fen, points_reversed, created_at, consumption_id) "
        f"SELECT CONCAT('new-refund-', id), refunded_fen, 0, {NOW}, id FROM points_consumption "
        f"WHERE id > {consumptions} AND refunded_fen > 0",
    )


CHECKSUMS = {
    "report_sales_day": "day, branch_id, source_kind, consumptions, amount_fen, refunded_fen",
    "report_customer_month": "month, branch_id, customer_id, amount_fen, refunded_fen",
    "report_customer_visits": "customer_id, first_day, first_branch_id, second_day, gap_days",
    "report_acquisition_day": "day, source_kind, customers",
    "report_visit_day": "day, branch_id, department_id, practitioner_id, bookings, no_shows, consultations, converted, converted_fen",
    "report_survey_day": "day, branch_id, department_id, practitioner_id, responses, score_sum",
    "report_points_day": "day, kind, points_in, points_out",
    "report_mall_day": "day, redemptions, units, cancelled_units, points_spent",
    "report_voucher_day": "day, branch_id, source_type, redeemed",
}


async def execute_marks(conn) -> None:
    """Every month dirty again, as the rebuild leaves it (the top-share months follow the family)."""
    from reports import summaries
    from reports.sql import fetch

    await summaries.mark_months_dirty(conn, [r["month"] for r in
                                             await fetch(conn, "SELECT DISTINCT month FROM report_customer_month")])


async def checksums(database: str) -> dict[str, tuple]:
    out = {}
    for table, columns in CHECKSUMS.items():
        rows = await sql(database, f"SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT_WS('|', {columns}))), 0) FROM {table}")
        out[table] = tuple(int(x) for x in rows[0])
    return out


async def timed_rebuild() -> tuple[float, float]:
    from kernel.db import transaction
    from reports import partners, summaries

    started = time.perf_counter()
    async with transaction() as conn:
        await summaries.rebuild(conn)
    whole = time.perf_counter() - started
    async with transaction() as conn:
        top = await partners.max_ids(conn, "points_consumption")
        refund_top = await partners.max_ids(conn, "points_consumption_refund")
        started = time.perf_counter()
        await partners.rebuild_sales(conn, top, refund_top)
        await partners.rebuild_customer_visits(conn, top)
        sales = time.perf_counter() - started
    return whole, sales


async def fold_consumption_family() -> float:
    """The consumption family's fold as the job runs it: chunks of new consumptions, then refunds, then the
    top-share months they touched, one transaction each."""
    from kernel.db import run_in_transaction
    from reports import summaries

    started = time.perf_counter()
    for step in (summaries.fold_consumptions, summaries.fold_consumption_refunds):
        while await run_in_transaction(step) > 0:
            pass
    await run_in_transaction(summaries.fold_top_share)
    return time.perf_counter() - started


async def run_fold_job() -> float:
    return await run_jobs([("reports.fold", ())])


async def report_latencies(database: str, repeat: int) -> list[tuple[str, str, list[float]]]:
    import httpx

    from kernel import clock
    from kernel.db import transaction
    from kernel.identity.service import create_staff
    from kernel.identity.tokens import issue_staff_token
    from reports.views import REPORTS

    async with transaction() as conn:
        staff = await create_staff(conn, username=f"bench{secrets.token_hex(3)}",
                                   password="bench reports password 1", roles=["admin"])
    token = issue_staff_token(staff.id, staff.role_set, staff.token_version)[0]
    today = clock.local_today()
    ranges = {"last month": (today - timedelta(days=30), today), "last 12 months": (today - timedelta(days=364), today)}
    out = []
    async with running_server(bench_env(database)) as base:
        async with httpx.AsyncClient(base_url=base, timeout=60, headers={"Authorization": f"Bearer {token}"}) as http:
            for slug, spec in REPORTS.items():
                for label, (first, last) in ranges.items():
                    params = {"from": first.isoformat(), "to": last.isoformat()}
                    times = []
                    for _ in range(repeat + 1):
                        started = time.perf_counter()
                        response = await http.get(f"/admin/reports/{slug}", params=params)
                        times.append((time.perf_counter() - started) * 1000)
                        assert response.status_code == 200, (slug, response.text)
                    out.append((slug, label, times[1:]))
                    if spec.takes_branch and label == "last 12 months":
                        times = []
                        for _ in range(repeat + 1):
                            started = time.perf_counter()
                            response = await http.get(f"/admin/reports/{slug}", params={**params, "branch_id": 2})
                            times.append((time.perf_counter() - started) * 1000)
                            assert response.status_code == 200, (slug, response.text)
                        out.append((slug, "last 12 months, one branch", times[1:]))
            first, last = ranges["last 12 months"]
            for slug in ("top-customers", "consultations"):
                times = []
                for _ in range(repeat + 1):
                    started = time.perf_counter()
                    response = await http.get(f"/admin/reports/{slug}/export",
                                              params={"from": first.isoformat(), "to": last.isoformat(), "format": "csv"})
                    times.append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 200, (slug, response.text)
                out.append((f"{slug} CSV export", "last 12 months", times[1:]))
    return out


async def main(customers: int, consumptions: int, new: int, repeat: int) -> None:
    print(machine_line())
    async with bench_database() as database:
        os.environ.update(bench_env(database))
        from kernel import db

        await db.migrate()
        await db.init_db()
        try:
            seeded = await seed(database, customers, consumptions)
            print(f"seeded {customers} customers, {consumptions} consumptions (+ bookings, ledger, mall, vouchers, "
                  f"group buys, rewards, RFM) with bulk SQL in {seeded:.1f} s")
            source_rows = consumptions + consumptions // 50
            from kernel.db import run_in_transaction, transaction
            from reports import partners, summaries

            async def whole_rebuild() -> float:
                started = time.perf_counter()
                async with transaction() as conn:
                    await summaries.rebuild(conn)
                return time.perf_counter() - started

            bulk_runs = [await whole_rebuild()]  # also puts every cursor at the seeded tops
            await add_new_rows(database, customers, consumptions, new)
            refund_top = int((await sql(database, "SELECT MAX(id) FROM points_consumption_refund "
                                                   f"WHERE consumption_id <= {consumptions}"))[0][0])
            sales_runs, fold_runs = [], []
            for _ in range(repeat):
                # The consumption family recomputed in bulk up to the seeded rows (timed), which also takes
                # the new rows back out, then the new rows folded as the job folds them (timed).
                async def family(conn) -> float:
                    started = time.perf_counter()
                    await partners.rebuild_sales(conn, consumptions, refund_top)
                    await partners.rebuild_customer_visits(conn, consumptions)
                    await execute_marks(conn)
                    await summaries.move_cursor(conn, "consumption", consumptions)
                    await summaries.move_cursor(conn, "consumption_refund", refund_top)
                    return time.perf_counter() - started

                sales_runs.append(await run_in_transaction(family))
                await run_in_transaction(summaries.fold_top_share)
                fold_runs.append(await fold_consumption_family())
            job = await run_fold_job()
            folded = await checksums(database)
            bulk_runs.append(await whole_rebuild())
            rebuilt = await checksums(database)
            differ = [t for t in CHECKSUMS if folded[t] != rebuilt[t]]
            assert not differ, f"folded tables differ from a rebuild: {differ}"
            new_rows = new + new // 50
            bulk, sales, fold = median_of(bulk_runs), median_of(sales_runs), median_of(fold_runs)
            print()
            print("| path | rows | seconds (median) | ms per row |")
            print("| --- | --- | --- | --- |")
            print(f"| bulk rebuild, every summary table ({len(bulk_runs)} runs) | {source_rows} consumptions + refunds, "
                  f"and the other sources | {bulk:.1f} | {bulk * 1000 / source_rows:.4f} |")
            print(f"| bulk recomputation, consumption family ({repeat} runs) | {source_rows} | {sales:.1f} | "
                  f"{sales * 1000 / source_rows:.4f} |")
            print(f"| fold of the new rows, consumption family as the job runs it ({repeat} runs) | {new_rows} | "
                  f"{fold:.2f} | {fold * 1000 / new_rows:.4f} |")
            print(f"| one `reports.fold` job run after that (refolds of bookings, mall, campaigns, rewards, RFM, "
                  f"liability; nothing new) | - | {job:.2f} | - |")
            print(f"\nfold per new row / bulk per row (consumption family): "
                  f"{(fold / new_rows) / (sales / source_rows):.1f}x; folding {new_rows} new rows costs "
                  f"{100 * fold / sales:.1f}% of recomputing the family in bulk; folded tables equal a fresh rebuild: yes")
            latencies = await report_latencies(database, repeat)
            print()
            print("| report | range | median ms | max ms | under 300 ms |")
            print("| --- | --- | --- | --- | --- |")
            for slug, label, times in latencies:
                print(f"| {slug} | {label} | {median_of(times):.0f} | {max(times):.0f} | "
                      f"{'yes' if max(times) < 300 else 'NO'} |")
        finally:
            await db.close_db()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--consumptions", type=int, default=1_000_000)
    parser.add_argument("--new", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.customers, args.consumptions, args.new, args.repeat))
