"""Booking benchmark: the slot listing and booking under contention, each against a baseline in the same run.

    /work/main/.venv/bin/python -m bench.booking [--requests 600] [--concurrency 16,64]

- Listing: `GET /app/booking/slots` for a day of 20 slots, compared with `GET /health/live` (the framework's
  ceiling) and with the same SELECT issued directly through aiomysql.
- Booking: distinct customers `POST /app/bookings` onto 30 slots of capacity 5 (150 seats for `--requests`
  attempts, so most are refused `slot_full`), compared with the bare conditional seat UPDATE
  (`booked = booked + 1 WHERE booked < capacity`, one transaction each) through aiomysql on slots of the same
  shape. Afterwards every slot's counter is checked against its bookings and its capacity.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import aiomysql

from bench.harness import MYSQL, bench_stack, cli, health_baseline, http_client, machine_line, run_load

ZONE = ZoneInfo("Asia/Shanghai")
SLOTS_PER_DAY = 20
CONTENDED_SLOTS = 30
CAPACITY = 5


def _naive(instant: datetime) -> datetime:
    return instant.astimezone(timezone.utc).replace(tzinfo=None)


async def seed_catalogue(database: str) -> tuple[int, int, int]:
    """A branch, a department and a schedule (rows written directly: set-up, not measured)."""
    conn = await aiomysql.connect(db=database, autocommit=True, **MYSQL)
    now = _naive(datetime.now(timezone.utc))
    try:
        async with conn.cursor() as cur:
            await cur.execute(
                "INSERT INTO booking_branch (code, name, address, phone, timezone, is_active, created_at)"
                " VALUES ('bench', 'Bench branch', '', '', 'Asia/Shanghai', 1, %s)", (now,))
            branch_id = cur.lastrowid
            await cur.execute(
                "INSERT INTO booking_department (code, name, description, sort_order, is_active, created_at)"
                " VALUES ('bench', 'Bench dept', '', 0, 1, %s)", (now,))
            department_id = cur.lastrowid
            await cur.execute(
                "INSERT INTO booking_schedule (branch_id, department_id, practitioner_id, name, slot_minutes, capacity,"
                " valid_from, valid_until, is_active, created_by, created_at)"
                " VALUES (%s, %s, NULL, 'bench', 30, %s, %s, NULL, 1, NULL, %s)",
                (branch_id, department_id, CAPACITY, now.date(), now))
            schedule_id = cur.lastrowid
    finally:
        conn.close()
    return branch_id, department_id, schedule_id


async def seed_slots(database: str, ids: tuple[int, int, int], day, count: int, minute_offset: int = 0) -> list[int]:
    branch_id, department_id, schedule_id = ids
    conn = await aiomysql.connect(db=database, autocommit=True, **MYSQL)
    first = datetime.combine(day, datetime.min.time(), tzinfo=ZONE) + timedelta(hours=8, minutes=minute_offset)
    try:
        async with conn.cursor() as cur:
            rows = [
                (schedule_id, branch_id, department_id, _naive(first + timedelta(minutes=30 * i)),
                 _naive(first + timedelta(minutes=30 * i + 30)), day, CAPACITY)
                for i in range(count)
            ]
            await cur.executemany(
                "INSERT INTO booking_slot (schedule_id, branch_id, department_id, practitioner_id, starts_at, ends_at,"
                " local_date, capacity, booked, status) VALUES (%s,%s,%s,NULL,%s,%s,%s,%s,0,'open')", rows)
            await cur.execute("SELECT id FROM booking_slot WHERE schedule_id=%s AND local_date=%s ORDER BY id DESC"
                              " LIMIT %s", (schedule_id, day, count))
            return sorted(r[0] for r in await cur.fetchall())
    finally:
        conn.close()


async def make_customers(database: str, count: int) -> list[int]:
    conn = await aiomysql.connect(db=database, autocommit=True, **MYSQL)
    now = _naive(datetime.now(timezone.utc))
    tag = secrets.token_hex(3)
    try:
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO customer (openid, nickname, avatar_url, gender, referral_code, created_at, last_login_at)"
                " VALUES (%s,'','','unknown',%s,%s,%s)",
                [(f"bench-{tag}-{i}", secrets.token_hex(6).upper(), now, now) for i in range(count)])
            await cur.execute("SELECT id FROM customer WHERE openid LIKE %s ORDER BY id", (f"bench-{tag}-%",))
            return [r[0] for r in await cur.fetchall()]
    finally:
        conn.close()


async def direct_seat(pool: aiomysql.Pool, slot_id: int) -> int:
    """The baseline: only the conditional seat UPDATE, in its own transaction."""
    async with pool.acquire() as conn:
        await conn.begin()
        async with conn.cursor() as cur:
            taken = await cur.execute(
                "UPDATE booking_slot SET booked = booked + 1 WHERE id=%s AND status='open' AND booked < capacity",
                (slot_id,))
        await conn.commit()
        return 201 if taken == 1 else 409


async def direct_listing(pool: aiomysql.Pool, branch_id: int, department_id: int, day) -> int:
    earliest = _naive(datetime.now(timezone.utc) + timedelta(minutes=120))
    async with pool.acquire() as conn:
        async with conn.cursor() as cur:
            await cur.execute(
                "SELECT * FROM booking_slot WHERE branch_id=%s AND department_id=%s AND local_date=%s"
                " AND status='open' AND starts_at>=%s ORDER BY starts_at, id", (branch_id, department_id, day, earliest))
            await cur.fetchall()
        await conn.commit()
    return 200


async def check_invariants(database: str) -> str:
    conn = await aiomysql.connect(db=database, **MYSQL)
    try:
        async with conn.cursor() as cur:
            await cur.execute("SELECT COUNT(*) FROM booking_slot WHERE booked > capacity OR booked < 0")
            (over,) = await cur.fetchone()
            await cur.execute(
                "SELECT COUNT(*) FROM booking_slot s WHERE s.id IN (SELECT slot_id FROM booking_booking) AND s.booked <>"
                " (SELECT COUNT(*) FROM booking_booking b WHERE b.slot_id = s.id AND b.status <> 'cancelled')")
            (mismatched,) = await cur.fetchone()
            await cur.execute("SELECT COUNT(*) FROM booking_booking")
            (bookings,) = await cur.fetchone()
    finally:
        conn.close()
    return f"bookings written: {bookings}; slots over capacity: {over}; slots whose counter != bookings: {mismatched}"


async def main(requests: int, levels: list[int]) -> None:
    print(machine_line())
    async with bench_stack(autocommit=False) as stack:
        database, base, pool = stack.database, stack.base, stack.pool
        ids = await seed_catalogue(database)
        branch_id, department_id, _ = ids
        tomorrow = datetime.now(ZONE).date() + timedelta(days=1)
        await seed_slots(database, ids, tomorrow, SLOTS_PER_DAY)
        listing_token = stack.customer_token((await make_customers(database, 1))[0])
        for round_no, concurrency in enumerate(levels):
            async with http_client(base, concurrency) as http:
                headers = {"Authorization": f"Bearer {listing_token}"}
                params = {"branch_id": branch_id, "department_id": department_id, "date": tomorrow.isoformat()}

                async def listing(_: int) -> int:
                    response = await http.get("/app/booking/slots", params=params, headers=headers)
                    assert len(response.json()["items"]) == SLOTS_PER_DAY
                    return response.status_code

                framework = await health_baseline(http, requests=requests, concurrency=concurrency)
                raw_select = await run_load(
                    "same SELECT via aiomysql", lambda _: direct_listing(pool, branch_id, department_id, tomorrow),
                    total=requests, concurrency=concurrency)
                slots_http = await run_load("GET /app/booking/slots", listing, total=requests,
                                            concurrency=concurrency)
                print(framework.row())
                print(raw_select.row())
                print(slots_http.row(framework))
                print(f"{'  (vs the raw SELECT)':<34} ratio {slots_http.rps / raw_select.rps:6.2f}")

                # Contended booking: each round on fresh slots of another day.
                day = tomorrow + timedelta(days=1 + round_no)
                http_slots = await seed_slots(database, ids, day, CONTENDED_SLOTS)
                sql_slots = await seed_slots(database, ids, day, CONTENDED_SLOTS, minute_offset=15)
                customers = await make_customers(database, requests)
                tokens = [stack.customer_token(c) for c in customers]

                async def book(i: int) -> int:
                    response = await http.post(
                        "/app/bookings", json={"slot_id": http_slots[i % CONTENDED_SLOTS]},
                        headers={"Authorization": f"Bearer {tokens[i]}"})
                    return response.status_code

                seats_sql = await run_load(
                    "conditional seat UPDATE via aiomysql",
                    lambda i: direct_seat(pool, sql_slots[i % CONTENDED_SLOTS]),
                    total=requests, concurrency=concurrency)
                seats_http = await run_load("POST /app/bookings (contended)", book, total=requests,
                                            concurrency=concurrency)
                print(seats_sql.row())
                print(seats_http.row(seats_sql))
                print()
        print(await check_invariants(database))


if __name__ == "__main__":
    cli(main, requests=600, concurrency="16,64")
