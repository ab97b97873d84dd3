"""Load test of the whole customer journey: login, check-in, mall, booking, bestie-card group, pay, orders.

    /work/main/.venv/bin/python -m bench.journey [--concurrency 1,4,16,32,64,128] [--journeys-per-lane 2]

One server process (uvicorn) and one separate arq worker process (`python -m arq workers.settings.WorkerSettings`,
which also runs the outbox relay) on a fresh MariaDB database. Everything the journey needs is set up through
the real routes: a staff admin (bootstrap account) creates a branch, a department and a schedule and publishes
tomorrow's slots, a mall item, a live bestie-card campaign (groups of 3); each customer logs in once during the
set-up (so the journey's login is a returning customer's) and receives points through
`POST /admin/points/adjustments`. Rate limits are switched off for the run (RATE_LIMIT_ENABLED=0): every
customer comes from 127.0.0.1, so the per-IP limits would otherwise refuse the load itself.

A virtual customer walks, one request after the other:
login (sandbox code) → check in → list mall items → redeem the item (Idempotency-Key) → list tomorrow's slots →
book one → view a friend's group and join it, or open a group → read the order → `POST /app/orders/{id}/pay` →
`POST /sandbox/payments/{out_trade_no}/succeed` → list its orders.
A leader's group opens only once the worker has handled the leader's payment (the `orders.order_paid` job), so
whether a customer joins or opens depends on how far the worker has got; both are real paths.

At each concurrency `c` the script first measures `GET /health/live` at the same concurrency (the framework's
ceiling in the same run), then runs `c x journeys-per-lane` journeys (at least 20) with `c` customers in flight.
It prints, per step and for the whole journey: requests/s, p50, p99, errors (5xx or transport errors) and
refusals (unexpected 4xx), and the ratio to the health baseline. After the last level it waits for the worker to
drain the outbox, then reports the backlog and checks the invariants (stock, seats, capacity, balances).

A coarse profile comes with each level: CPU seconds of the server, the worker, this load generator, MariaDB,
Redis and everything else on the machine (from /proc), and InnoDB's open transactions of the bench database
sampled every 0.2 s (waiting for a row lock, running a statement, or idle while the application computes).
The script also clears arq's outbox job keys before and after, so a run starts from an empty queue
(job ids carry the outbox row's creation instant, so runs on fresh databases no longer collide).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import secrets
import sys
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import aiomysql
import httpx
from redis.asyncio import Redis

from bench.harness import (
    MYSQL,
    REDIS_URL,
    ROOT,
    Result,
    bench_database,
    bench_env,
    http_client,
    machine_line,
    run_load,
    running_server,
    stop_process,
)

ZONE = ZoneInfo("Asia/Shanghai")
GROUP_SIZE = 3
ITEM_PRICE = 100
POINTS_EACH = 1_000
SLOTS_PER_DAY = 24  # 08:00-20:00 in 30-minute slots
ADMIN = ("bench-admin", "bench-admin-password")

STEPS = [
    "login", "check-in", "mall items", "redeem", "slots", "book", "view group", "join group", "open group",
    "order", "pay", "sandbox succeed", "orders",
]


SUMMARY: list = []  # one row per concurrency level, for the closing table


class Refused(Exception):
    """A step answered something the journey cannot go on from."""


@dataclass
class Shared:
    """What the seeded catalogue gives the journeys."""

    branch_id: int
    department_id: int
    day: str
    item_id: int
    campaign_id: int
    sku_id: int
    # Groups whose leader has paid, with the seats this load generator has not handed out yet.
    joinable: deque = field(default_factory=deque)


@dataclass
class LevelStats:
    concurrency: int
    latencies: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STEPS})
    statuses: dict[str, Counter] = field(default_factory=lambda: {s: Counter() for s in STEPS})
    journey_ms: list[float] = field(default_factory=list)
    outcomes: Counter = field(default_factory=Counter)
    codes: Counter = field(default_factory=Counter)  # 4xx answers by step and error code
    cpu: dict[str, float] = field(default_factory=dict)
    transactions: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def step_result(self, step: str) -> Result:
        lat = self.latencies[step]
        return Result(step, self.concurrency, len(lat), self.seconds, lat, self.statuses[step])

    @property
    def requests(self) -> int:
        return sum(len(v) for v in self.latencies.values())


def _unexpected(statuses: Counter, expected: set[int]) -> int:
    return sum(n for s, n in statuses.items() if s != "exc" and int(s) < 500 and int(s) not in expected)


EXPECTED = {
    "login": {200}, "check-in": {201}, "mall items": {200}, "redeem": {201}, "slots": {200}, "book": {201},
    "view group": {200}, "join group": {201}, "open group": {201}, "order": {200}, "pay": {200},
    "sandbox succeed": {200}, "orders": {200},
}


# --- set-up through the real routes -------------------------------------------------------------------

def _ok(response: httpx.Response, *expected: int) -> dict:
    if response.status_code not in (expected or (200, 201)):
        raise RuntimeError(f"set-up {response.request.method} {response.request.url.path}: "
                           f"{response.status_code} {response.text[:300]}")
    return response.json()


async def seed_catalogue(http: httpx.AsyncClient, customers: int) -> tuple[dict, Shared]:
    token = _ok(await http.post("/admin/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]}))
    staff = {"Authorization": f"Bearer {token['access_token']}"}
    branch = _ok(await http.post("/admin/booking/branches", headers=staff, json={"code": "bench", "name": "Bench"}))
    dept = _ok(await http.post("/admin/booking/departments", headers=staff,
                                     json={"code": "skin", "name": "Skin"}))
    today = datetime.now(ZONE).date()
    tomorrow = today + timedelta(days=1)
    # Seats for every customer of the run, with room to spare so a stale pick rarely meets a full slot.
    capacity = max(10, math.ceil(customers * 3 / SLOTS_PER_DAY))
    schedule = _ok(await http.post("/admin/schedules", headers=staff, json={
        "branch_id": branch["id"], "department_id": dept["id"], "slot_minutes": 30, "capacity": capacity,
        "valid_from": today.isoformat(), "hours": [{"weekday": w, "start": "08:00", "end": "20:00"} for w in range(7)],
    }))
    published = _ok(await http.post(f"/admin/schedules/{schedule['id']}/publish", headers=staff,
                                          json={"from_date": tomorrow.isoformat(), "days": 1}))
    assert published["created"] == SLOTS_PER_DAY, published
    item = _ok(await http.post("/admin/mall/items", headers=staff, json={
        "kind": "gift", "title": "Bench lipstick", "points_price": ITEM_PRICE, "stock_total": customers + 100,
        "on_shelf": True,
    }))
    now = datetime.now(timezone.utc)
    campaign = _ok(await http.post("/admin/campaigns", headers=staff, json={
        "kind": "bestie_card", "title": "Bench 闺蜜卡", "starts_at": (now - timedelta(minutes=1)).isoformat(),
        "ends_at": (now + timedelta(days=1)).isoformat(), "group_size": GROUP_SIZE, "time_limit_minutes": 120,
        "skus": [{"title": "小气泡", "original_price_fen": 29800, "group_price_fen": 9900, "stock": customers + 100}],
    }))
    _ok(await http.post(f"/admin/campaigns/{campaign['id']}/publish", headers=staff), 200, 201)
    shared = Shared(branch_id=branch["id"], department_id=dept["id"], day=tomorrow.isoformat(), item_id=item["id"],
                    campaign_id=campaign["id"], sku_id=campaign["skus"][0]["id"])
    return staff, shared


async def register_customers(http: httpx.AsyncClient, staff: dict, names: list[str]) -> None:
    """Each customer logs in once and is given points by staff (set-up, not measured)."""
    async def one(i: int) -> int:
        login = _ok(await http.post("/app/auth/login", json={"code": f"sandbox:{names[i]}"}))
        _ok(await http.post("/admin/points/adjustments", headers=staff, json={
            "customer_id": login["customer_id"], "points": POINTS_EACH, "reason": "bench grant"}))
        return 200

    result = await run_load("set-up: login + points", one, total=len(names), concurrency=16)
    if result.errors or set(result.statuses) != {"200"}:
        raise RuntimeError(f"set-up failed: {result.statuses}")


# --- the journey ---------------------------------------------------------------------------------------

async def journey(http: httpx.AsyncClient, shared: Shared, stats: LevelStats, name: str) -> str:
    async def step(label: str, method: str, url: str, *, ok: bool = True, **kw) -> httpx.Response:
        started = time.perf_counter()
        try:
            response = await http.request(method, url, **kw)
        except Exception as exc:
            stats.latencies[label].append((time.perf_counter() - started) * 1000)
            stats.statuses[label]["exc"] += 1
            stats.codes[f"{label} {type(exc).__name__}"] += 1
            raise Refused(f"{label}: {type(exc).__name__}")
        stats.latencies[label].append((time.perf_counter() - started) * 1000)
        stats.statuses[label][str(response.status_code)] += 1
        if 400 <= response.status_code < 500:
            try:
                stats.codes[f"{label} {response.status_code} {response.json().get('code')}"] += 1
            except ValueError:
                stats.codes[f"{label} {response.status_code}"] += 1
        if ok and response.status_code not in EXPECTED[label]:
            raise Refused(f"{label}: {response.status_code}")
        return response

    login = await step("login", "POST", "/app/auth/login", json={"code": f"sandbox:{name}"})
    me = {"Authorization": f"Bearer {login.json()['access_token']}"}
    await step("check-in", "POST", "/app/check-ins", headers=me)
    items = (await step("mall items", "GET", "/app/mall/items", headers=me)).json()
    item = next(i for i in items if i["id"] == shared.item_id)
    await step("redeem", "POST", "/app/mall/redemptions", json={"item_id": item["id"]},
               headers={**me, "Idempotency-Key": uuid.uuid4().hex})
    slots = (await step("slots", "GET", "/app/booking/slots", headers=me, params={
        "branch_id": shared.branch_id, "department_id": shared.department_id, "date": shared.day})).json()["items"]
    # Among the emptiest slots, as a customer would (a listing a second old may show a seat just taken).
    free = sorted((s for s in slots if s["remaining"] > 0), key=lambda s: -s["remaining"])[:8]
    if not free:
        raise Refused("slots: none free")
    await step("book", "POST", "/app/bookings", json={"slot_id": random.choice(free)["id"]}, headers=me)

    seat = None
    path = "opened"
    if shared.joinable:
        # Claim the seat before any await, so two lanes never aim at the same last seat.
        group_id, seats = shared.joinable.popleft()
        if seats > 1:
            shared.joinable.appendleft((group_id, seats - 1))
        view = (await step("view group", "GET", f"/app/groups/{group_id}", headers=me)).json()
        if view["status"] == "open" and view["seats_left"] > 0:
            joined = await step("join group", "POST", f"/app/groups/{group_id}/join", headers=me, ok=False)
            if joined.status_code == 201:
                seat, path = joined.json(), "joined"
            elif joined.status_code != 409:
                raise Refused(f"join group: {joined.status_code}")
        elif view["status"] == "pending":
            # The worker has not handled the leader's payment yet: the seat goes back for a later friend.
            shared.joinable.append((group_id, 1))
    if seat is None:
        seat = (await step("open group", "POST", "/app/groups", headers=me,
                           json={"campaign_id": shared.campaign_id, "sku_id": shared.sku_id})).json()
    order = (await step("order", "GET", f"/app/orders/{seat['order_id']}", headers=me)).json()
    await step("pay", "POST", f"/app/orders/{order['id']}/pay", headers=me)
    paid = await step("sandbox succeed", "POST", f"/sandbox/payments/{order['out_trade_no']}/succeed", headers=me)
    if paid.json()["outcome"] != "applied":
        raise Refused(f"sandbox succeed: {paid.json()['outcome']}")
    if path == "opened":
        shared.joinable.append((seat["group_id"], GROUP_SIZE - 1))
    await step("orders", "GET", "/app/orders", headers=me)
    return path


def journey_client(base: str, concurrency: int) -> httpx.AsyncClient:
    """The harness client, but idle connections are dropped after 2 s: uvicorn closes them after 5 s, and a
    client that keeps them as long (httpx's default) sometimes reuses one at the moment the server closes it
    (ReadError / RemoteProtocolError at c=128 in a first run). A mini-program's wx.request pool does the same."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency, keepalive_expiry=2.0)
    return httpx.AsyncClient(base_url=base, limits=limits, timeout=60)


async def run_level(base: str, shared: Shared, concurrency: int, names: list[str],
                    meter: "CpuMeter", database: str) -> tuple[Result, LevelStats]:
    async with journey_client(base, concurrency) as http:
        async def health(_: int) -> int:
            return (await http.get("/health/live")).status_code

        await run_load("warm-up", health, total=100, concurrency=concurrency)
        baseline = await run_load("GET /health/live", health, total=min(1500, max(300, 10 * concurrency)),
                                  concurrency=concurrency)
        stats = LevelStats(concurrency)

        async def walk(i: int) -> str:
            started = time.perf_counter()
            try:
                outcome = await journey(http, shared, stats, names[i])
            except Refused as exc:
                outcome = f"failed at {exc}"
            stats.journey_ms.append((time.perf_counter() - started) * 1000)
            stats.outcomes[outcome] += 1
            return outcome

        started, cpu_before = time.perf_counter(), meter.sample()
        stop = asyncio.Event()
        watching = asyncio.create_task(watch_transactions(database, stop))
        await run_load("journeys", walk, total=len(names), concurrency=concurrency)
        stats.seconds = time.perf_counter() - started
        stats.cpu = meter.cores(cpu_before, meter.sample())
        stop.set()
        stats.transactions = await watching
    return baseline, stats


def report(baseline: Result, stats: LevelStats) -> None:
    c = stats.concurrency
    done = stats.outcomes["joined"] + stats.outcomes["opened"]
    journeys = len(stats.journey_ms)
    whole = Result("whole journey", c, journeys, stats.seconds, stats.journey_ms, Counter())
    errors = sum(stats.step_result(s).errors for s in STEPS)
    refused = sum(_unexpected(stats.statuses[s], EXPECTED[s]) for s in STEPS)
    rps = stats.requests / stats.seconds
    print(f"--- c={c}: {baseline.row()}")
    print(f"  {'step':<16} {'n':>5} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'err':>4} {'4xx?':>4}  "
          f"{'p50 / health p50':>16}  statuses")
    for s in STEPS:
        r = stats.step_result(s)
        if not r.requests:
            continue
        print(f"  {s:<16} {r.requests:>5} {r.rps:>7.1f} {r.pct(50):>8.1f} {r.pct(99):>8.1f} {r.errors:>4} "
              f"{_unexpected(stats.statuses[s], EXPECTED[s]):>4}  {r.pct(50) / max(baseline.pct(50), 0.01):>16.1f}  "
              f"{dict(stats.statuses[s])}")
    print(f"  {'whole journey':<16} {journeys:>5} {journeys / stats.seconds:>7.2f} {whole.pct(50):>8.1f} "
          f"{whole.pct(99):>8.1f} {errors:>4} {refused:>4}  journeys/s; completed {done}/{journeys} "
          f"({stats.outcomes['opened']} opened, {stats.outcomes['joined']} joined)")
    print(f"  all requests: {stats.requests} in {stats.seconds:.1f} s = {rps:.1f} req/s; "
          f"ratio to health {rps / baseline.rps:.2f}; outcomes {dict(stats.outcomes)}")
    if stats.codes:
        print(f"  4xx answers and exceptions: {dict(stats.codes)}")
    if stats.transactions:
        sampled = dict(stats.transactions)
        samples = int(sampled.pop("samples"))
        print(f"  open transactions of the server, average of {samples} samples: "
              + ", ".join(f"{k} {v:.1f}" for k, v in sampled.items()))
    if stats.cpu:
        print("  CPU during the journeys, in cores (2 = the whole machine): "
              + ", ".join(f"{k} {v:.2f}" for k, v in stats.cpu.items()))
    SUMMARY.append((c, baseline, stats, errors, refused, done))


def summary_table() -> None:
    print("\n| c | health req/s | health p99 ms | journeys | journeys/s | req/s | ratio | journey p50 ms | "
          "journey p99 ms | errors | 4xx | server cores | server CPU ms/journey | other processes' cores |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for c, baseline, stats, errors, refused, done in SUMMARY:
        rps = stats.requests / stats.seconds
        ms = sorted(stats.journey_ms)
        p = lambda q: ms[min(len(ms) - 1, int(round(q / 100 * (len(ms) - 1))))]  # noqa: E731
        print(f"| {c} | {baseline.rps:.0f} | {baseline.pct(99):.1f} | {done}/{len(ms)} | "
              f"{len(ms) / stats.seconds:.2f} | {rps:.0f} | {rps / baseline.rps:.2f} | {p(50):.0f} | {p(99):.0f} | "
              f"{errors} | {refused} | {stats.cpu.get('server', 0):.2f} | "
              f"{stats.cpu.get('server', 0) * stats.seconds * 1000 / len(ms):.0f} | "
              f"{stats.cpu.get('other processes', 0):.2f} |")


# --- where the CPU goes (a coarse profile: /proc counters of each process) --------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _process_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def _machine_busy() -> float:
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / _TICK  # all but idle and iowait


def _children(parent: int) -> dict[int, str]:
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == parent:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, ValueError):
            continue
    return found


class CpuMeter:
    """CPU seconds of the server, the worker, this load generator, MariaDB, and the machine, over a span."""

    def __init__(self, worker_pid: int) -> None:
        kids = _children(os.getpid())
        self.pids = {"server": next((p for p, cmd in kids.items() if " api serve" in cmd), 0), "worker": worker_pid}
        mariadb = [p for p in (_pid_of("mariadbd"), _pid_of("mysqld")) if p]
        if mariadb:
            self.pids["MariaDB (shared)"] = mariadb[0]
        redis_pid = _pid_of("redis-server", REDIS_URL.split("//")[1].split("/")[0].rsplit(":", 1)[-1])
        if redis_pid:
            self.pids["Redis (shared)"] = redis_pid

    def sample(self) -> dict[str, float]:
        values = {name: _process_cpu(pid) for name, pid in self.pids.items()}
        values["load generator"] = time.process_time()
        values["machine"] = _machine_busy()
        values["_wall"] = time.perf_counter()
        return values

    @staticmethod
    def cores(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        wall = after["_wall"] - before["_wall"]
        cores = {k: (after[k] - before[k]) / wall for k in before if k != "_wall"}
        cores["other processes"] = cores["machine"] - sum(v for k, v in cores.items() if k != "machine")
        return cores


async def watch_transactions(database: str, stop: asyncio.Event) -> dict[str, float]:
    """Sample InnoDB's open transactions of the bench database every 0.2 s: waiting for a row lock, running a
    statement, or idle inside the transaction (MariaDB waits for the application's next statement)."""
    conn = await aiomysql.connect(autocommit=True, **MYSQL)
    totals: Counter = Counter()
    samples = 0
    try:
        async with conn.cursor() as cur:
            while not stop.is_set():
                await cur.execute(
                    "SELECT t.trx_state, p.command, l.lock_table FROM information_schema.innodb_trx t"
                    " JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id"
                    " LEFT JOIN information_schema.innodb_locks l ON l.lock_id = t.trx_requested_lock_id"
                    " WHERE p.db = %s", (database,))
                all_rows = await cur.fetchall()
                rows = [(state, cmd) for state, cmd, _ in all_rows]
                for state, _, table in all_rows:
                    if state == "LOCK WAIT" and table:
                        totals[f"  of which on {table.split('.')[-1].strip('`')}"] += 1
                samples += 1
                totals["open"] += len(rows)
                totals["waiting for a row lock"] += sum(1 for state, _ in rows if state == "LOCK WAIT")
                totals["running a statement"] += sum(1 for state, cmd in rows if state != "LOCK WAIT" and cmd != "Sleep")
                totals["idle, waiting for the app"] += sum(1 for state, cmd in rows if state != "LOCK WAIT" and cmd == "Sleep")
                try:
                    await asyncio.wait_for(stop.wait(), 0.2)
                except asyncio.TimeoutError:
                    pass
    finally:
        conn.close()
    return {"samples": samples, **{k: v / max(samples, 1) for k, v in totals.items()}}


def _pid_of(name: str, in_cmdline: str = "") -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name and in_cmdline in (entry / "cmdline").read_text():
                    return int(entry.name)
            except OSError:
                continue
    return 0


# --- the worker, the backlog and the invariants ----------------------------------------------------------

async def start_worker(env: dict[str, str], log_path: Path) -> asyncio.subprocess.Process:
    log = open(log_path, "wb")
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "arq", "workers.settings.WorkerSettings", cwd=ROOT, env=env,
        stdout=log, stderr=asyncio.subprocess.STDOUT,
    )


async def backlog(database: str, redis: Redis, queue: str) -> tuple[int, int, int]:
    """(outbox rows not relayed, arq jobs due now, arq jobs deferred to later)."""
    conn = await aiomysql.connect(db=database, autocommit=True, **MYSQL)
    try:
        async with conn.cursor() as cur:
            await cur.execute("SELECT COUNT(*) FROM outbox_message WHERE delivered_at IS NULL")
            (undelivered,) = await cur.fetchone()
    finally:
        conn.close()
    now_ms = int(time.time() * 1000)
    due = await redis.zcount(queue, "-inf", now_ms)
    deferred = await redis.zcount(queue, f"({now_ms}", "+inf")
    return undelivered, due, deferred


async def clear_outbox_job_keys(redis: Redis) -> int:
    """Remove arq's keys for outbox jobs so each run starts with an empty queue and no kept results."""
    removed = 0
    for pattern in ("arq:result:outbox-*", "arq:job:outbox-*", "arq:retry:outbox-*", "arq:in-progress:outbox-*"):
        keys = [k async for k in redis.scan_iter(match=pattern, count=1000)]
        for i in range(0, len(keys), 500):
            removed += await redis.delete(*keys[i:i + 500])
    return removed


SQL_CHECKS = {
    "mall items over-reserved or below zero":
        "SELECT COUNT(*) FROM mall_item WHERE stock_reserved > stock_total OR stock_reserved < 0",
    "SKUs with stock below zero or above total":
        "SELECT COUNT(*) FROM gb_sku WHERE stock_left < 0 OR stock_left > stock_total",
    "groups over size or paid above seats":
        "SELECT COUNT(*) FROM gb_group WHERE seats_taken > size OR paid_count > seats_taken OR seats_taken < 0",
    "slots over capacity or below zero": "SELECT COUNT(*) FROM booking_slot WHERE booked > capacity OR booked < 0",
    "slots whose counter != bookings":
        "SELECT COUNT(*) FROM booking_slot s WHERE s.booked <> (SELECT COUNT(*) FROM booking_booking b"
        " WHERE b.slot_id = s.id AND b.status <> 'cancelled')",
    "accounts with a negative balance": "SELECT COUNT(*) FROM points_account WHERE balance < 0",
    "accounts whose balance != ledger":
        "SELECT COUNT(*) FROM points_account a WHERE a.balance <> "
        "(SELECT COALESCE(SUM(delta), 0) FROM points_ledger_entry e WHERE e.customer_id = a.customer_id)",
    "accounts whose balance != lots":
        "SELECT COUNT(*) FROM points_account a WHERE a.balance <> "
        "(SELECT COALESCE(SUM(remaining), 0) FROM points_lot l WHERE l.customer_id = a.customer_id)",
    "accounts whose pending != pending rows":
        "SELECT COUNT(*) FROM points_account a WHERE a.pending <> (SELECT COALESCE(SUM(points), 0)"
        " FROM points_pending p WHERE p.customer_id = a.customer_id AND p.status = 'pending')",
    "paid orders whose paid job has not run": "SELECT COUNT(*) FROM shop_order WHERE status IN ('paid', 'fulfilled')"
        " AND paid_handled_at IS NULL",
    "full groups not succeeded":
        "SELECT COUNT(*) FROM gb_group WHERE paid_count >= size AND status <> 'succeeded'",
}

COUNTS = {
    "customers": "SELECT COUNT(*) FROM customer",
    "check-ins": "SELECT COUNT(*) FROM points_check_in",
    "redemptions": "SELECT COUNT(*) FROM mall_redemption",
    "bookings": "SELECT COUNT(*) FROM booking_booking",
    "orders paid or fulfilled": "SELECT COUNT(*) FROM shop_order WHERE status IN ('paid', 'fulfilled')",
    "groups succeeded": "SELECT COUNT(*) FROM gb_group WHERE status = 'succeeded'",
    "groups open": "SELECT COUNT(*) FROM gb_group WHERE status = 'open'",
    "vouchers": "SELECT COUNT(*) FROM voucher",
    "consumptions": "SELECT COUNT(*) FROM points_consumption",
    "outbox rows": "SELECT COUNT(*) FROM outbox_message",
}


async def invariants(database: str) -> tuple[dict[str, int], dict[str, int]]:
    conn = await aiomysql.connect(db=database, autocommit=True, **MYSQL)
    try:
        async with conn.cursor() as cur:
            out = []
            for queries in (SQL_CHECKS, COUNTS):
                values = {}
                for label, sql in queries.items():
                    await cur.execute(sql)
                    values[label] = (await cur.fetchone())[0]
                out.append(values)
    finally:
        conn.close()
    return out[0], out[1]


# --- main ----------------------------------------------------------------------------------------------

async def main(levels: list[int], per_lane: int) -> None:
    print(machine_line(), "| load generator, server, worker, MariaDB and Redis share the machine")
    plan = [max(20, per_lane * c) for c in levels]
    tag = secrets.token_hex(3)
    names = [[f"j{tag}-{c}-{i}" for i in range(n)] for c, n in zip(levels, plan)]
    redis = Redis.from_url(REDIS_URL)
    stale = await clear_outbox_job_keys(redis)
    if stale:
        print(f"(cleared {stale} arq keys of outbox jobs left by an earlier run)")
    started_all = time.perf_counter()
    try:
        async with bench_database() as database:
            env = bench_env(database, RATE_LIMIT_ENABLED="0", BOOTSTRAP_ADMIN_USERNAME=ADMIN[0],
                            BOOTSTRAP_ADMIN_PASSWORD=ADMIN[1], OUTBOX_POLL_SECONDS="0.2")
            queue = env["ARQ_QUEUE_NAME"]
            worker_log = Path(f"/tmp/{database}-worker.log")
            async with running_server(env) as base:
                worker = await start_worker(env, worker_log)
                meter = CpuMeter(worker.pid)
                try:
                    async with http_client(base, 16) as http:
                        staff, shared = await seed_catalogue(http, sum(plan))
                        t = time.perf_counter()
                        await register_customers(http, staff, [n for level in names for n in level])
                        print(f"set-up: catalogue and {sum(plan)} customers with {POINTS_EACH} points each "
                              f"in {time.perf_counter() - t:.1f} s (not measured)")
                    for c, level_names in zip(levels, names):
                        baseline, stats = await run_level(base, shared, c, level_names, meter, database)
                        report(baseline, stats)
                        print(f"  backlog after the level (outbox undelivered, arq due, arq deferred): "
                              f"{await backlog(database, redis, queue)}")
                    at_end = await backlog(database, redis, queue)
                    t = time.perf_counter()
                    while time.perf_counter() - t < 30:
                        drained = await backlog(database, redis, queue)
                        if drained[0] == 0 and drained[1] == 0:
                            break
                        await asyncio.sleep(0.5)
                    drain_s = time.perf_counter() - t
                finally:
                    await stop_process(worker)
            summary_table()
            print(f"\noutbox backlog when the load stopped: {at_end[0]} undelivered rows, {at_end[1]} arq jobs due, "
                  f"{at_end[2]} deferred (close-unpaid and group-deadline jobs)")
            print(f"after {drain_s:.1f} s of draining: {drained[0]} undelivered rows, {drained[1]} jobs due, "
                  f"{drained[2]} deferred")
            failed_jobs = sum(1 for line in worker_log.read_text(errors="replace").splitlines() if " ! " in line)
            print(f"worker: {failed_jobs} failed job runs logged ({worker_log})")
            checks, counts = await invariants(database)
            print("counts: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
            print("invariants (each must be 0): " + ", ".join(f"{k} {v}" for k, v in checks.items()))
            print("INVARIANTS " + ("HOLD" if not any(checks.values()) else "BROKEN"))
    finally:
        await clear_outbox_job_keys(redis)
        await redis.aclose()
    print(f"total run time {time.perf_counter() - started_all:.0f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", default="1,4,16,32,64,128")
    parser.add_argument("--journeys-per-lane", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(main([int(c) for c in args.concurrency.split(",")], args.journeys_per_lane))
