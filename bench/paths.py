"""The measured paths: how each one seeds fresh rows for a round, the HTTP requests wrk sends, and the
same-run baseline it is compared with (GET /health/live for reads, the raw SQL for writes)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from bench.load import Request
from bench.stack import Stack

ZONE = ZoneInfo("Asia/Shanghai")
POINTS_EACH = 10_000
PRICE = 100
GROUP_SIZE = 5


def _naive(instant: datetime) -> datetime:
    return instant.astimezone(timezone.utc).replace(tzinfo=None)


def _now() -> datetime:
    return _naive(datetime.now(timezone.utc))


def _bearer(stack: Stack, customer_id: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.customer_token(customer_id)}"}


# --- set-up rows, written directly (not measured) ------------------------------------------------------

async def make_customers(stack: Stack, count: int) -> list[int]:
    """Customers with a points account, as their first login leaves them."""
    tag = secrets.token_hex(4)
    now = _now()
    await stack.sql(
        "INSERT INTO customer (openid, nickname, avatar_url, gender, referral_code, created_at, last_login_at)"
        " VALUES (%s,'','','unknown',%s,%s,%s)",
        many=[(f"bench-{tag}-{i}", secrets.token_hex(6).upper(), now, now) for i in range(count)])
    ids = [r[0] for r in await stack.sql("SELECT id FROM customer WHERE openid LIKE %s ORDER BY id",
                                         (f"bench-{tag}-%",), fetch=True)]
    await stack.sql(
        "INSERT INTO points_account (customer_id, balance, pending, shortfall, lifetime_earned, created_at,"
        " updated_at) VALUES (%s,0,0,0,0,%s,%s)", many=[(i, now, now) for i in ids])
    return ids


async def fund(stack: Stack, customer_ids: list[int]) -> None:
    """Points for each customer the way the ledger holds them: an entry, a lot and the balance."""
    tag = secrets.token_hex(4)
    now = _now()
    expires = now + timedelta(days=365)
    await stack.sql(
        "INSERT INTO points_ledger_entry (delta, kind, ref, reason, balance_after, expires_at, detail,"
        " occurred_at, customer_id) VALUES (%s,'campaign',%s,'bench grant',%s,%s,'{}',%s,%s)",
        many=[(POINTS_EACH, f"bench-fund:{tag}:{c}", POINTS_EACH, expires, now, c) for c in customer_ids])
    await stack.sql(
        "INSERT INTO points_lot (points, remaining, earned_at, expires_at, customer_id, entry_id)"
        " SELECT delta, delta, occurred_at, expires_at, customer_id, id FROM points_ledger_entry WHERE ref LIKE %s",
        (f"bench-fund:{tag}:%",))
    await stack.sql(
        "UPDATE points_account SET balance=%s, lifetime_earned=%s WHERE customer_id IN"
        " (SELECT customer_id FROM points_ledger_entry WHERE ref LIKE %s)",
        (POINTS_EACH, POINTS_EACH, f"bench-fund:{tag}:%"))


async def make_item(stack: Stack, stock: int, title: str = "Hot lipstick") -> int:
    now = _now()
    return await stack.sql(
        "INSERT INTO mall_item (kind, title, description, image_urls, points_price, stock_total, stock_reserved,"
        " voucher_valid_days, branch_ids, on_shelf, sort_order, archived, created_at, updated_at)"
        " VALUES ('gift',%s,'','[]',%s,%s,0,30,'[]',1,0,0,%s,%s)", (title, PRICE, stock, now, now))


async def make_campaign(stack: Stack, *, stock: int, leaders: list[int]) -> tuple[int, int, list[int]]:
    """A live bestie-card campaign with one SKU and one open group per leader."""
    now = _now()
    campaign_id = await stack.sql(
        "INSERT INTO gb_campaign (kind, title, description, status, starts_at, ends_at, group_size,"
        " time_limit_minutes, per_customer_limit, new_customers_only, leader_bonus_points, voucher_valid_days,"
        " created_at, updated_at) VALUES ('bestie_card','Bench 闺蜜卡','','live',%s,%s,%s,1440,1,0,0,90,%s,%s)",
        (now - timedelta(hours=1), now + timedelta(days=1), GROUP_SIZE, now, now))
    sku_id = await stack.sql(
        "INSERT INTO gb_sku (campaign_id, title, original_price_fen, group_price_fen, stock_total, stock_left,"
        " sold_units, tiers, position) VALUES (%s,'小气泡',29800,9900,%s,%s,0,'[]',0)", (campaign_id, stock, stock))
    deadline = now + timedelta(hours=12)
    await stack.sql(
        "INSERT INTO gb_group (campaign_id, sku_id, leader_id, size, seats_taken, paid_count, status,"
        " deadline, open_slot, `virtual`, share_views, created_at) VALUES (%s,%s,%s,%s,1,1,'open',%s,1,0,0,%s)",
        many=[(campaign_id, sku_id, leader, GROUP_SIZE, deadline, now) for leader in leaders])
    groups = [r[0] for r in await stack.sql("SELECT id FROM gb_group WHERE sku_id=%s ORDER BY id", (sku_id,),
                                            fetch=True)]
    return campaign_id, sku_id, groups


async def seed_catalogue(stack: Stack) -> tuple[int, int, int]:
    """A branch, a department and a schedule."""
    now = _now()
    tag = secrets.token_hex(3)
    branch_id = await stack.sql(
        "INSERT INTO booking_branch (code, name, address, phone, timezone, is_active, created_at)"
        " VALUES (%s, 'Bench branch', '', '', 'Asia/Shanghai', 1, %s)", (f"b{tag}", now))
    department_id = await stack.sql(
        "INSERT INTO booking_department (code, name, description, sort_order, is_active, created_at)"
        " VALUES (%s, 'Bench dept', '', 0, 1, %s)", (f"d{tag}", now))
    schedule_id = await stack.sql(
        "INSERT INTO booking_schedule (branch_id, department_id, practitioner_id, name, slot_minutes, capacity,"
        " valid_from, valid_until, is_active, created_by, created_at)"
        " VALUES (%s, %s, NULL, 'bench', 30, 5, %s, NULL, 1, NULL, %s)", (branch_id, department_id, now.date(), now))
    return branch_id, department_id, schedule_id


async def seed_slots(stack: Stack, ids: tuple[int, int, int], day: date, count: int, capacity: int) -> list[int]:
    branch_id, department_id, schedule_id = ids
    first = datetime.combine(day, datetime.min.time(), tzinfo=ZONE) + timedelta(hours=8)
    rows = [(schedule_id, branch_id, department_id, _naive(first + timedelta(minutes=30 * i)),
             _naive(first + timedelta(minutes=30 * i + 30)), day, capacity) for i in range(count)]
    await stack.sql(
        "INSERT INTO booking_slot (schedule_id, branch_id, department_id, practitioner_id, starts_at, ends_at,"
        " local_date, capacity, booked, status) VALUES (%s,%s,%s,NULL,%s,%s,%s,%s,0,'open')", many=rows)
    found = await stack.sql("SELECT id FROM booking_slot WHERE schedule_id=%s AND local_date=%s ORDER BY id",
                            (schedule_id, day), fetch=True)
    return [r[0] for r in found][-count:]


# --- the raw baselines -----------------------------------------------------------------------------------

async def raw_check_in(stack: Stack, customer_id: int) -> int:
    """A first check-in of the day with the statements its correctness needs, in one transaction: the
    rules, yesterday's row (the streak), the check-in row (its unique key is the once-a-day guard), the
    account locked, the ledger entry, the balance and the lot."""
    now = datetime.now(timezone.utc)
    today = now.astimezone(ZONE).date()
    naive = now.replace(tzinfo=None)
    ref = f"checkin:{customer_id}:{today.isoformat()}"
    expires = naive + timedelta(days=400)
    async with stack.raw_transaction() as tx:
        await tx.execute("SELECT * FROM points_rules WHERE id=%s", (1,))
        await tx.fetchone()
        await tx.execute("SELECT streak, day_in_cycle FROM points_check_in WHERE customer_id=%s AND local_date=%s",
                         (customer_id, today - timedelta(days=1)))
        await tx.fetchone()
        await tx.execute(
            "INSERT INTO points_check_in (local_date, streak, day_in_cycle, points, makeup, created_at,"
            " customer_id) VALUES (%s,1,1,5,0,%s,%s)", (today, naive, customer_id))
        await tx.execute("SELECT id, balance FROM points_account WHERE customer_id=%s FOR UPDATE", (customer_id,))
        account_id, balance = await tx.fetchone()
        await tx.execute(
            "INSERT INTO points_ledger_entry (delta, kind, ref, reason, balance_after, expires_at,"
            " original_ref, detail, occurred_at, customer_id) VALUES (5,'check_in',%s,%s,%s,%s,NULL,'{}',%s,%s)",
            (ref, "Daily check-in (day 1 of 7, streak 1)", balance + 5, expires, naive, customer_id))
        entry_id = tx.lastrowid
        await tx.execute("UPDATE points_account SET balance=balance+5, updated_at=%s,"
                         " lifetime_earned=lifetime_earned+5 WHERE id=%s", (naive, account_id))
        await tx.execute("INSERT INTO points_lot (points, remaining, earned_at, expires_at, customer_id, entry_id)"
                         " VALUES (5,5,%s,%s,%s,%s)", (naive, expires, customer_id, entry_id))
    return 201


@dataclass
class Prepared:
    """One round's fresh requests for wrk, and the raw baseline's `send(i)` on rows of the same shape."""

    requests: list[Request]
    raw: Callable[[int], Awaitable[int]] | None = None


@dataclass
class BenchPath:
    key: str
    title: str
    route: str
    baseline: str  # "health" or a description of the raw SQL
    prepare: Callable[[Stack, int], Awaitable[Prepared]]
    write: bool


# --- reads -------------------------------------------------------------------------------------------------

async def prep_health(stack: Stack, n: int) -> Prepared:
    return Prepared([Request("GET", "/health/live")])


_READ_CUSTOMERS = 200  # the reads cycle through this many customers' tokens


async def _reader_headers(stack: Stack) -> list[dict[str, str]]:
    customers = await make_customers(stack, _READ_CUSTOMERS)
    return [_bearer(stack, c) for c in customers]


async def prep_slots(stack: Stack, n: int) -> Prepared:
    ids = await seed_catalogue(stack)
    tomorrow = datetime.now(ZONE).date() + timedelta(days=1)
    await seed_slots(stack, ids, tomorrow, 20, capacity=5)
    path = f"/app/booking/slots?branch_id={ids[0]}&department_id={ids[1]}&date={tomorrow.isoformat()}"
    return Prepared([Request("GET", path, headers=h) for h in await _reader_headers(stack)])


_SHELF: dict[str, bool] = {}


async def prep_mall_items(stack: Stack, n: int) -> Prepared:
    if not _SHELF.get(stack.base):  # one shelf of 8 items for every round (the list grows otherwise)
        for i in range(8):
            await make_item(stack, stock=1000, title=f"Item {i}")
        _SHELF[stack.base] = True
    return Prepared([Request("GET", "/app/mall/items", headers=h) for h in await _reader_headers(stack)])


async def prep_points(stack: Stack, n: int) -> Prepared:
    return Prepared([Request("GET", "/app/points", headers=h) for h in await _reader_headers(stack)])


async def prep_campaign_page(stack: Stack, n: int) -> Prepared:
    leaders = await make_customers(stack, 3)
    campaign_id, _, _ = await make_campaign(stack, stock=1000, leaders=leaders)
    return Prepared([Request("GET", f"/app/campaigns/{campaign_id}", headers=h)
                     for h in await _reader_headers(stack)])


# --- writes ------------------------------------------------------------------------------------------------

async def prep_check_in(stack: Stack, n: int) -> Prepared:
    http_ids = await make_customers(stack, n)
    raw_ids = await make_customers(stack, n)
    requests = [Request("POST", "/app/check-ins", headers=_bearer(stack, c)) for c in http_ids]
    return Prepared(requests, lambda i: raw_check_in(stack, raw_ids[i]))


def _raw_update(stack: Stack, statement: str, row_id: int) -> Callable[[int], Awaitable[int]]:
    async def send(_: int) -> int:
        return 200 if await stack.raw_statement(statement, (row_id,)) == 1 else 409
    return send


async def prep_redemption(stack: Stack, n: int) -> Prepared:
    customers = await make_customers(stack, n)
    await fund(stack, customers)
    hot = await make_item(stack, stock=n)
    raw_item = await make_item(stack, stock=n)
    body = json.dumps({"item_id": hot})
    requests = [Request("POST", "/app/mall/redemptions", body,
                        {**_bearer(stack, c), "Content-Type": "application/json",
                         "Idempotency-Key": f"bench-{secrets.token_hex(8)}"}) for c in customers]
    return Prepared(requests, _raw_update(
        stack, "UPDATE mall_item SET stock_reserved = stock_reserved + 1"
               " WHERE id = %s AND stock_reserved + 1 <= stock_total", raw_item))


async def prep_group_join(stack: Stack, n: int) -> Prepared:
    per_group = GROUP_SIZE - 1
    leaders = await make_customers(stack, n // per_group + 1)
    joiners = await make_customers(stack, n)
    _, _, groups = await make_campaign(stack, stock=n + len(leaders), leaders=leaders)
    _, raw_sku, _ = await make_campaign(stack, stock=n, leaders=[])
    requests = [Request("POST", f"/app/groups/{groups[i // per_group]}/join", headers=_bearer(stack, c))
                for i, c in enumerate(joiners)]
    return Prepared(requests, _raw_update(
        stack, "UPDATE gb_sku SET stock_left = stock_left - 1 WHERE id = %s AND stock_left >= 1", raw_sku))


async def prep_booking(stack: Stack, n: int) -> Prepared:
    ids = await seed_catalogue(stack)
    day = datetime.now(ZONE).date() + timedelta(days=2)
    hot, raw_slot = await seed_slots(stack, ids, day, 2, capacity=n)
    customers = await make_customers(stack, n)
    body = json.dumps({"slot_id": hot})
    requests = [Request("POST", "/app/bookings", body, {**_bearer(stack, c), "Content-Type": "application/json"})
                for c in customers]
    return Prepared(requests, _raw_update(
        stack, "UPDATE booking_slot SET booked = booked + 1 WHERE id=%s AND status='open' AND booked < capacity",
        raw_slot))


HEALTH = BenchPath("health", "GET /health/live", "/health/live", "-", prep_health, write=False)
PATHS = [
    BenchPath("slots", "Slot listing", "GET /app/booking/slots", "health", prep_slots, write=False),
    BenchPath("mall_items", "Mall items", "GET /app/mall/items", "health", prep_mall_items, write=False),
    BenchPath("points", "Points summary", "GET /app/points", "health", prep_points, write=False),
    BenchPath("campaign", "Campaign page", "GET /app/campaigns/{id}", "health", prep_campaign_page, write=False),
    BenchPath("check_in", "Daily check-in", "POST /app/check-ins", "the check-in transaction through the raw driver",
              prep_check_in, write=True),
    BenchPath("redemption", "Mall redemption, one hot item", "POST /app/mall/redemptions",
              "raw conditional UPDATE on one mall_item row", prep_redemption, write=True),
    BenchPath("group_join", "Group join, one hot SKU", "POST /app/groups/{id}/join",
              "raw conditional UPDATE on one gb_sku row", prep_group_join, write=True),
    BenchPath("booking", "Booking, one hot slot", "POST /app/bookings",
              "raw conditional UPDATE on one booking_slot row", prep_booking, write=True),
]
